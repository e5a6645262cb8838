"""Serving the published feed: `aggregator serve` beside nginx serving the same bytes.

    .venv/bin/python bench/serve.py [--entries 50] [--duration 8] [--connections 16] [--pin]

A database with N approved drafts (French bodies of the Ghost-style fixture, with credit) is
built through the store, `aggregator serve` (one uvicorn worker, as shipped) is started on
it, and /feeds/published.atom is fetched once; nginx (one worker, a config written to a
temporary directory, listening on 127.0.0.1) then serves those exact bytes as a static file,
and so does a bare ASGI app under uvicorn (one worker): the ceiling of any Python server
here, which shows how much of the gap to nginx is the aggregator's own work. wrk (one
thread; with --pin on CPU 0 and the servers on CPU 1) measures all three in the same run,
one after the other: plain GETs (200), then conditional GETs answered 304 (`If-None-Match`
with each server's own ETag).

Goal: aggregator ≥ 0.6 × nginx's requests per second, p99 latency under 20 ms, for both.
Needs wrk and nginx (apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import dictionary_translate  # noqa: E402

from aggregator import config as config_module  # noqa: E402
from aggregator.polling.parse import ParsedEntry  # noqa: E402
from aggregator.store import DraftContent, Store  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "torment-nexus-like.rss"
# With --pin: wrk on one core, the server measured on the other (a quiet machine only:
# anything else running on that core then weighs on one server and not the others).
PIN = "--pin" in sys.argv and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
CLIENT_CPU = ["taskset", "-c", "0"] if PIN else []
SERVER_CPU = ["taskset", "-c", "1"] if PIN else []
GOAL_RATIO = 0.6
GOAL_P99_MS = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/tmp-body;
    proxy_temp_path {folder}/tmp-proxy;
    fastcgi_temp_path {folder}/tmp-fastcgi;
    uwsgi_temp_path {folder}/tmp-uwsgi;
    scgi_temp_path {folder}/tmp-scgi;
    types {{ application/atom+xml atom; }}
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {folder}/www;
        add_header Cache-Control "public, max-age=300";
    }}
}}
"""


def bare_app(body_file: str, etag: str) -> None:
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

    port = int(sys.argv[sys.argv.index("--bare-port") + 1])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


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
    if "--bare-body" in sys.argv:
        bare_app(sys.argv[sys.argv.index("--bare-body") + 1], '"bare"')
        return
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--entries", type=int, default=50)
    options.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    options.add_argument("--connections", type=int, default=16)
    options.add_argument("--pin", action="store_true", help="wrk on CPU 0, servers on CPU 1")
    args = options.parse_args()
    for program in ("wrk", "nginx"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is missing: apt-get install wrk nginx-light")

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as name:
        folder = Path(name)
        aggregator_port, nginx_port = free_port(), free_port()
        config = build_database(folder, args.entries, aggregator_port)
        log = folder / "serve.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [*SERVER_CPU, sys.executable, "-m", "aggregator", "--config", str(config), "serve"],
                cwd=folder, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        nginx = bare = None
        try:
            ours = f"http://127.0.0.1:{aggregator_port}/feeds/published.atom"
            wait_until_up(f"http://127.0.0.1:{aggregator_port}/healthz", server, log)
            status, body, headers = fetch(ours)
            entries = body.count(b"<entry")
            assert status == 200 and entries == args.entries, (status, entries)
            (folder / "www" / "feeds").mkdir(parents=True)
            (folder / "www" / "feeds" / "published.atom").write_bytes(body)
            (folder / "nginx.conf").write_text(
                NGINX_CONF.format(folder=folder, port=nginx_port), encoding="utf-8"
            )
            nginx = subprocess.Popen(
                [*SERVER_CPU, "nginx", "-e", str(folder / "nginx-error.log"),
                 "-c", str(folder / "nginx.conf")],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            theirs = f"http://127.0.0.1:{nginx_port}/feeds/published.atom"
            wait_until_up(theirs, nginx, folder / "nginx-error.log")
            static_status, static_body, static_headers = fetch(theirs)
            assert static_status == 200 and static_body == body, "nginx must serve the same bytes"

            bare_port = free_port()
            bare = subprocess.Popen(
                [*SERVER_CPU, sys.executable, __file__, "--bare-body",
                 str(folder / "www" / "feeds" / "published.atom"), "--bare-port", str(bare_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            python = f"http://127.0.0.1:{bare_port}/feeds/published.atom"
            wait_until_up(python, bare, folder / "serve.log")
            etags = {ours: headers["etag"], theirs: static_headers["etag"], python: '"bare"'}
            for url, etag in etags.items():
                again, _, _ = fetch(url, {"If-None-Match": etag})
                assert again == 304, f"{url} answered {again} to If-None-Match"

            print(
                f"GET /feeds/published.atom: {args.entries} entries, {len(body):,} bytes; "
                f"wrk -t1 -c{args.connections} -d{args.duration}s, one worker each"
                f"{', wrk on CPU 0 and servers on CPU 1' if PIN else ''}\n"
            )
            print(f"{'':32}{'requests/s':>12}{'p99':>12}")
            for label, conditional in (("200 (full body)", False), ("304 (If-None-Match)", True)):
                results = {}
                for server_name, url in (
                    ("nginx (static file)", theirs),
                    ("bare ASGI app (uvicorn)", python),
                    ("aggregator serve", ours),
                ):
                    extra = {"If-None-Match": etags[url]} if conditional else {}
                    wrk(url, 1, args.connections, extra)  # warm-up
                    results[server_name] = wrk(url, args.duration, args.connections, extra)
                print(label)
                for server_name, (rate, p99) in results.items():
                    print(f"  {server_name:30}{rate:12,.0f}{p99:10.2f} ms")
                ratio = results["aggregator serve"][0] / results["nginx (static file)"][0]
                p99 = results["aggregator serve"][1]
                verdict = "ok" if ratio >= GOAL_RATIO and p99 < GOAL_P99_MS else "MISSED"
                print(
                    f"  ratio aggregator / nginx: {ratio:.2f} (goal >= {GOAL_RATIO}); "
                    f"p99 {p99:.2f} ms (goal < {GOAL_P99_MS:.0f} ms): {verdict}\n"
                )
        finally:
            for process in (bare, nginx, server):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=15)


if __name__ == "__main__":
    main()
