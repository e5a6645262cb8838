"""Serving the published feed: `aggregator serve` beside nginx serving the same bytes.

    .venv/bin/python -m bench.serve [--entries 50] [--duration 8] [--connections 16] [--pin]

A database with N approved drafts (French bodies of the Ghost-style fixture, with credit) is
built through the store and `aggregator serve` (one uvicorn worker, as shipped) is started
on it; it writes the publication directory. Measured one after the other in the same run,
by wrk (one thread; with --pin on CPU 0 and the servers on CPU 1), with plain GETs (200)
and conditional GETs answered 304 (`If-None-Match` with each server's own ETag):

- nginx (one worker) serving the feed's bytes as a plain static file: the reference;
- nginx serving the publication directory with the configuration docs/operations.md gives
  (the same text tests/web/test_nginx.py runs): goal, nginx's figure;
- `aggregator serve` answering /feeds/published.atom: goal >= 0.6 x nginx;
- peers that show where the time goes: a bare ASGI app under uvicorn (Python's ceiling
  under the shipped server), and the publication's answers (``Representation.answer``)
  under granian's RSGI interface (one worker, one runtime thread), the candidate server.

Every response must be a 200 or a 304 (wrk's "Non-2xx or 3xx" stops the run).
Needs wrk and nginx (apt-get install wrk nginx); granian (pip) for its row, else skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator import config as config_module
from aggregator.polling.parse import ParsedEntry
from aggregator.store import DraftContent, Store
from tests.nginx import documented_nginx_server, nginx_conf
from tests.servers import dictionary_translate, free_port

ROOT = Path(__file__).resolve().parent.parent

FIXTURE = ROOT / "tests" / "data" / "torment-nexus-like.rss"
# With --pin: wrk on one core, the server measured on the other (a quiet machine only:
# anything else running on that core then weighs on one server and not the others).
PIN = "--pin" in sys.argv and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
CLIENT_CPU = ["taskset", "-c", "0"] if PIN else []
SERVER_CPU = ["taskset", "-c", "1"] if PIN else []
GOAL_RATIO = 0.6
GOAL_P99_MS = 20.0


def build_database(folder: Path, entries: int, port: int) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{folder / "aggregator.db"}"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nbase_url = "http://127.0.0.1:{port}"\n'
        '[[feeds]]\nurl = "https://torment-nexus.mathewingram.com/rss/"\n'
        'name = "The Torment Nexus"\n',
        encoding="utf-8",
    )
    settings = config_module.load(config)
    bodies = re.findall(
        r"<content:encoded><!\[CDATA\[(.*?)\]\]></content:encoded>",
        FIXTURE.read_text(encoding="utf-8"),
        re.S,
    )[:2]
    store = Store.from_settings(settings)
    try:
        store.upgrade()
        start = datetime(2025, 2, 1, tzinfo=UTC)
        store.sync_feeds(settings.feeds, settings, start)
        [feed] = store.claim_due_feeds(start, timedelta(minutes=1), force=True)
        parsed = [
            ParsedEntry(
                key=f"post-{n}", url=f"https://torment-nexus.mathewingram.com/post-{n}/",
                title=f"Post number {n} about the courts and the executive order",
                author="Mathew Ingram", published_at=start + timedelta(hours=n), updated_at=None,
                summary_html=None, content_html=bodies[n % 2], content_hash=f"hash-{n}",
            )
            for n in range(entries)
        ]  # fmt: skip
        store.record_feed_success(
            feed.id, now=start, next_check_at=start, entries=parsed, title="The Torment Nexus",
            site_url="https://torment-nexus.mathewingram.com/", etag=None, last_modified=None,
            body_hash=None, ttl_seconds=None,
        )  # fmt: skip
        for work in store.claim_entries(start, timedelta(minutes=1), entries):
            html = work.content_html or ""
            store.save_extracted(work.id, full_html=html, source="feed", language="en", now=start)
            draft_id = store.save_draft(
                work.id,
                DraftContent(
                    dictionary_translate(work.title), dictionary_translate(html), "en", "fr",
                    "libre", len(html), 1,
                ),
                now=start,
            )  # fmt: skip
            store.approve(draft_id, actor="Camille", now=start + timedelta(days=1, minutes=work.id))
    finally:
        store.close()
    return config


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{url} did not answer within 30 s:\n{log.read_text(errors='replace')}")


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers (names in lower case)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body, received = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, body, received = error.code, error.read(), error.headers
    return status, body, {k.lower(): v for k, v in received.items()}


# nginx at its fastest here for one file (DESIGN.md: sendfile and tcp_nopush).
STATIC_SERVER = """
    types {{ application/atom+xml atom; }}
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        add_header Cache-Control "public, max-age=300";
    }}
"""


def bare_app(body_file: str, etag: str, port: int) -> None:
    """The peer that shows Python's own ceiling here: uvicorn (one worker, httptools, uvloop)
    with a bare ASGI app answering every request with the same bytes (or 304)."""
    import uvicorn

    body = Path(body_file).read_bytes()
    headers = [
        (b"content-type", b"application/atom+xml; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"etag", etag.encode()),
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if any(name == b"if-none-match" for name, _ in scope["headers"]):
            await send({"type": "http.response.start", "status": 304, "headers": headers[2:]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


_RSGI_ANSWERS: dict[int, tuple[Any, list[tuple[str, str]]]] = {}


async def publication_rsgi(scope: Any, proto: Any) -> None:
    """The candidate server's app: granian's RSGI interface answering the publication's
    feed with the aggregator's own ``Representation`` (loaded from $BENCH_PUBLICATION)."""
    if not _RSGI_ANSWERS:
        from aggregator.publishing.representation import represent

        feed = Path(os.environ["BENCH_PUBLICATION"]) / "current" / "feeds" / "published.atom"
        rep = represent(
            feed.read_bytes(),
            "application/atom+xml; charset=utf-8",
            modified=int(feed.stat().st_mtime),
            max_age=300,
        )
        _RSGI_ANSWERS[0] = (rep, [])
        for answer in (rep.plain, rep.compressed, rep.plain_not_modified):
            _RSGI_ANSWERS[id(answer)] = (
                answer,
                [(k.decode(), v.decode()) for k, v in answer.headers],
            )
        answer = rep.compressed_not_modified
        _RSGI_ANSWERS[id(answer)] = (answer, [(k.decode(), v.decode()) for k, v in answer.headers])
    rep = _RSGI_ANSWERS[0][0]
    headers = scope.headers
    answer = rep.answer(
        headers.get("if-none-match"),
        headers.get("if-modified-since"),
        headers.get("accept-encoding", ""),
    )
    raw = _RSGI_ANSWERS[id(answer)][1]
    if answer.body:
        proto.response_bytes(answer.status, raw, answer.body)
    else:
        proto.response_empty(answer.status, raw)


def start_granian(publication: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """granian (one worker, one runtime thread) serving ``publication_rsgi``."""
    environment = {
        **os.environ,
        "BENCH_PUBLICATION": str(publication),
        # serve.py imports the tests package, from the repository's root.
        "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [*SERVER_CPU, sys.executable, "-m", "granian", "--interface", "rsgi",
             "--workers", "1", "--runtime-threads", "1", "--no-ws", "--log-level", "warning",
             "--host", "127.0.0.1", "--port", str(port), "serve:publication_rsgi"],
            stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=ROOT / "bench",
        )  # fmt: skip


def start_nginx(folder: Path, server: str) -> subprocess.Popen[bytes]:
    (folder / "nginx.conf").write_text(nginx_conf(folder, server), encoding="utf-8")
    return subprocess.Popen(
        [*SERVER_CPU, "nginx", "-e", str(folder / "nginx-error.log"),
         "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip


def start_peer(role: str, argument: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [*SERVER_CPU, sys.executable, "-m", "bench.serve", role, argument,
             "--peer-port", str(port)],
            stdout=output, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip


def wrk(url: str, duration: int, connections: int, headers: dict[str, str]) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) measured by wrk with one thread."""
    command = [*CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    if "Non-2xx or 3xx responses" in output:
        sys.exit(f"wrk saw error responses from {url}:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", output).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rate, p99


def main() -> None:
    if "--peer-port" in sys.argv:
        port = int(sys.argv[sys.argv.index("--peer-port") + 1])
        bare_app(sys.argv[sys.argv.index("--bare-body") + 1], '"bare"', port)
        return
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--entries", type=int, default=50)
    options.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    options.add_argument("--connections", type=int, default=16)
    options.add_argument("--pin", action="store_true", help="wrk on CPU 0, servers on CPU 1")
    args = options.parse_args()
    for program in ("wrk", "nginx"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is missing: apt-get install wrk nginx")
    with_granian = importlib.util.find_spec("granian") is not None

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as name:
        folder = Path(name)
        ports = {key: free_port() for key in ("ours", "static", "directory", "bare", "granian")}
        config = build_database(folder, args.entries, ports["ours"])
        publication = folder / "publication"
        log = folder / "serve.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [*SERVER_CPU, sys.executable, "-m", "aggregator", "--config", str(config), "serve"],
                cwd=folder, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        others: list[subprocess.Popen[bytes]] = []
        try:
            urls = {
                key: f"http://127.0.0.1:{port}/feeds/published.atom" for key, port in ports.items()
            }
            wait_until_up(f"http://127.0.0.1:{ports['ours']}/healthz", server, log)
            status, body, _ = fetch(urls["ours"])
            entries = body.count(b"<entry")
            assert status == 200 and entries == args.entries, (status, entries)
            (folder / "www" / "feeds").mkdir(parents=True)
            (folder / "www" / "feeds" / "published.atom").write_bytes(body)
            static = folder / "nginx-static"
            documented = folder / "nginx-documented"
            static.mkdir()
            documented.mkdir()
            processes = {
                "static": start_nginx(
                    static, STATIC_SERVER.format(port=ports["static"], root=folder / "www")
                ),
                "directory": start_nginx(
                    documented,
                    documented_nginx_server(publication, ports["directory"], ports["ours"]),
                ),
                "bare": start_peer(
                    "--bare-body", str(folder / "www" / "feeds" / "published.atom"),
                    ports["bare"], log,
                ),
            }  # fmt: skip
            others.extend(processes.values())
            rows = {
                "nginx (static file)": "static",
                "nginx (documented config)": "directory",
                "bare ASGI app (uvicorn)": "bare",
                "aggregator serve (uvicorn)": "ours",
            }
            if with_granian:
                processes["granian"] = start_granian(publication, ports["granian"], log)
                others.append(processes["granian"])
                rows["publication under granian RSGI"] = "granian"
            for key, process in processes.items():
                wait_until_up(urls[key], process, log)
            etags = {}
            for key in rows.values():
                got_status, got_body, got_headers = fetch(urls[key])
                assert got_status == 200 and got_body == body, f"{key} must serve the same bytes"
                etags[key] = got_headers["etag"]
                again, _, _ = fetch(urls[key], {"If-None-Match": etags[key]})
                assert again == 304, f"{key} answered {again} to If-None-Match"
            assert etags["directory"] == etags["ours"], "nginx and aggregator serve: one ETag"

            print(
                f"GET /feeds/published.atom: {args.entries} entries, {len(body):,} bytes; "
                f"wrk -t1 -c{args.connections} -d{args.duration}s, one worker each"
                f"{', wrk on CPU 0 and servers on CPU 1' if PIN else ''}\n"
            )
            print(f"{'':34}{'requests/s':>12}{'p99':>12}{'x nginx':>9}")
            for label, conditional in (("200 (full body)", False), ("304 (If-None-Match)", True)):
                results = {}
                for row, key in rows.items():
                    extra = {"If-None-Match": etags[key]} if conditional else {}
                    wrk(urls[key], 1, args.connections, extra)  # warm-up
                    results[row] = wrk(urls[key], args.duration, args.connections, extra)
                reference = results["nginx (static file)"][0]
                print(label)
                for row, (rate, p99) in results.items():
                    print(f"  {row:32}{rate:12,.0f}{p99:9.2f} ms{rate / reference:9.2f}")
                ratio = results["aggregator serve (uvicorn)"][0] / reference
                p99 = results["aggregator serve (uvicorn)"][1]
                verdict = "ok" if ratio >= GOAL_RATIO and p99 < GOAL_P99_MS else "MISSED"
                print(
                    f"  aggregator serve / nginx: {ratio:.2f} (goal >= {GOAL_RATIO}); "
                    f"p99 {p99:.2f} ms (goal < {GOAL_P99_MS:.0f} ms): {verdict}\n"
                )
        finally:
            for process in [*others, server]:
                process.terminate()
                process.wait(timeout=15)


if __name__ == "__main__":
    main()
