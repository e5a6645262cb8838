"""Polling N feeds: aggregator beside the `reader` library, against the same local server.

    .venv/bin/python bench/poll.py                 # 500 feeds × 20 entries
    .venv/bin/python bench/poll.py --feeds 100     # quicker

One upstream server process (uvicorn, httptools, uvloop; an ASGI app serving feeds from
memory) listens on several loopback addresses, so that the feeds belong to several hosts as
they do in the world and the per-host politeness limit (2) applies as it would. Each client
runs in its own process; the rounds are interleaved (A for one client, then A for the
other, then B…), so that both meet the same server state and, as near as can be, the same
load from whatever else runs on the machine:

    A  cold: every feed new (200, full body, ETag and Last-Modified)
    B  nothing changed: every feed answers 304 to the stored validators
    D  10 % of the feeds changed (one new entry each); the others answer 304
    C  nothing changed, and the server sends no validators: 200 with the same body

D runs before C: after C a client may hold no validators any more, and D would then measure
something else for one client than for the other. Our client is called through
aggregator's public functions (``polling.poll_feeds`` with force, SQLite in a temporary
directory, ``[fetch] allow_private_networks = true``); reader through ``make_reader``,
``add_feed`` and ``update_feeds(workers=16, scheduled=False)``. Peak memory is each client
process's ru_maxrss; both clients' CPU time per round is printed beside their wall time.
The server's own ceiling is measured with wrk when it is installed, and
its CPU time per round is printed, so it is visible when the server is what limits a round.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROUNDS = [
    ("A", "cold", "validators", 0.0),
    ("B", "unchanged, 304", "validators", 0.0),
    ("D", "10 % changed", "validators", 0.1),
    ("C", "unchanged, no validators (200)", "plain", 0.0),
]
GOALS = {"A": 1.0, "B": 0.5, "C": 0.5, "D": 0.5}
MEMORY_GOAL_MB = 300
PARAGRAPH = (
    "Publishers keep moving their readers from social platforms to newsletters, and the "
    "numbers from the last year show why: open rates hold, paid tiers grow slowly but they "
    "grow, and nobody can change the algorithm under your feet. Number {n} of the week, "
    "story {entry} of feed {feed}, says the same thing in its own words. "
)


# ---------------------------------------------------------------------------- the server


class FeedSite:
    """ASGI app: /feeds/{i}.xml (RSS 2.0, ``entries`` items) and /_control."""

    def __init__(self, feeds: int, entries: int) -> None:
        self.feeds, self.entries = feeds, entries
        self.versions = [0] * feeds
        self.validators = True
        self._bodies: dict[tuple[int, int], bytes] = {}

    def body(self, feed: int) -> bytes:
        version = self.versions[feed]
        key = (feed, version)
        if key not in self._bodies:
            self._bodies[key] = self._render(feed, version)
        return self._bodies[key]

    def _render(self, feed: int, version: int) -> bytes:
        items = []
        for entry in range(version + self.entries - 1, version - 1, -1):
            text = "".join(
                f"<p>{PARAGRAPH.format(n=n, entry=entry, feed=feed)}</p>" for n in range(4)
            )
            items.append(
                f"<item><title>Story {entry} of feed {feed}</title>"
                f"<link>https://news{feed}.example/{entry}/</link>"
                f'<guid isPermaLink="false">feed{feed}-story{entry}</guid>'
                f"<dc:creator>Writer {feed}</dc:creator>"
                f"<pubDate>{formatdate(1_700_000_000 + entry * 3600, usegmt=True)}</pubDate>"
                f"<description>Story {entry}, in short.</description>"
                f"<content:encoded><![CDATA[{text}]]></content:encoded></item>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Newsletter {feed}</title><link>https://news{feed}.example/</link>"
            f"<description>Feed {feed}</description>{''.join(items)}</channel></rss>"
        ).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/_control":
            self._control(parse_qs(scope["query_string"].decode()))
            await self._send(send, 200, b"ok", [])
            return
        try:
            feed = int(path.removeprefix("/feeds/").removesuffix(".xml"))
            body = self.body(feed)
        except (ValueError, IndexError):
            await self._send(send, 404, b"no such feed", [])
            return
        headers = [(b"content-type", b"application/rss+xml; charset=utf-8")]
        if self.validators:
            etag = f'"{feed}-{self.versions[feed]}"'.encode()
            modified = formatdate(1_700_000_000 + self.versions[feed] * 60, usegmt=True).encode()
            headers += [(b"etag", etag), (b"last-modified", modified)]
            request = dict(scope["headers"])
            if request.get(b"if-none-match") == etag or (
                b"if-none-match" not in request and request.get(b"if-modified-since") == modified
            ):
                await self._send(send, 304, b"", headers)
                return
        await self._send(send, 200, body, headers)

    def _control(self, query: dict[str, list[str]]) -> None:
        if "reset" in query:
            self.versions = [0] * self.feeds
        if "mode" in query:
            self.validators = query["mode"][0] == "validators"
        if "bump" in query:
            share = float(query["bump"][0])
            if share > 0:
                step = max(1, round(1 / share))
                for feed in range(0, self.feeds, step):
                    self.versions[feed] += 1

    @staticmethod
    async def _send(send: Any, status: int, body: bytes, headers: list[Any]) -> None:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve(port: int, hosts: int, feeds: int, entries: int) -> None:
    import uvicorn

    sockets = []
    for host in host_addresses(hosts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sockets.append(sock)
    config = uvicorn.Config(
        FeedSite(feeds, entries), loop="uvloop", http="httptools", log_level="warning",
        access_log=False, lifespan="off", backlog=4096,
    )  # fmt: skip
    uvicorn.Server(config).run(sockets=sockets)


def host_addresses(hosts: int) -> list[str]:
    return [f"127.0.0.{n}" for n in range(1, hosts + 1)]


def feed_urls(port: int, hosts: int, feeds: int) -> list[str]:
    addresses = host_addresses(hosts)
    return [f"http://{addresses[i % hosts]}:{port}/feeds/{i}.xml" for i in range(feeds)]


def control(port: int, **query: object) -> None:
    text = "&".join(f"{k}={v}" for k, v in query.items())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_control?{text}", timeout=10) as r:
        r.read()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- the clients


def serve_rounds(update: Callable[[], None], count: Callable[[], int]) -> None:
    """Run one round per line read ("A", "B", …), answer with its figures; "rss" ends."""
    for line in sys.stdin:
        command = line.strip()
        if command == "rss":
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps({"maxrss_mb": maxrss}), flush=True)
            return
        started = time.perf_counter()
        cpu = time.process_time()
        update()
        elapsed = time.perf_counter() - started
        answer = {"seconds": elapsed, "cpu": time.process_time() - cpu, "entries": count()}
        print(json.dumps(answer), flush=True)


def client_ours(args: argparse.Namespace) -> None:
    from aggregator import config as config_module
    from aggregator.pipeline import Services
    from aggregator.polling.refresh import poll_feeds
    from aggregator.store import Store

    directory = Path(tempfile.mkdtemp(prefix="bench-poll-ours-"))
    urls = feed_urls(args.port, args.hosts, args.feeds)
    raw = {
        "database": {"url": f"sqlite:///{directory / 'aggregator.db'}"},
        "fetch": {"allow_private_networks": True, "concurrency": args.workers},
        "feeds": [{"url": url, "name": f"feed {i}"} for i, url in enumerate(urls)],
    }
    settings = config_module.from_dict(raw, directory / "config.toml")
    store = Store.from_settings(settings)
    store.upgrade()
    store.sync_feeds(settings.feeds, settings, Services.now())
    services = Services.build(settings, store)

    def update() -> None:
        report = poll_feeds(services, force=True)
        for error in report.errors[:3]:
            print(f"aggregator error: {error}", file=sys.stderr)

    def count() -> int:
        return sum(f.entries for f in store.feed_health())

    try:
        serve_rounds(update, count)
    finally:
        services.close()
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


def client_reader(args: argparse.Namespace) -> None:
    from reader import make_reader

    directory = Path(tempfile.mkdtemp(prefix="bench-poll-reader-"))
    reader = make_reader(str(directory / "reader.sqlite"))
    for url in feed_urls(args.port, args.hosts, args.feeds):
        reader.add_feed(url)

    def update() -> None:
        reader.update_feeds(workers=args.workers, scheduled=False)
        for feed in list(reader.get_feeds(broken=True))[:3]:
            print(f"reader error: {feed.url}: {feed.last_exception}", file=sys.stderr)

    def count() -> int:
        return int(reader.get_entry_counts().total or 0)

    try:
        serve_rounds(update, count)
    finally:
        reader.close()
        shutil.rmtree(directory, ignore_errors=True)


class Client:
    """A client process that runs the rounds it is told to, one at a time."""

    def __init__(self, which: str, args: argparse.Namespace) -> None:
        command = [
            sys.executable, __file__, "client", which, "--port", str(args.port),
            "--feeds", str(args.feeds), "--hosts", str(args.hosts),
            "--workers", str(args.workers),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"a client died during {command}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def finish(self) -> float:
        maxrss = float(self.ask("rss")["maxrss_mb"])
        self.process.wait(timeout=60)
        return maxrss


# ---------------------------------------------------------------------------- the run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the bench server exited with {process.returncode}")
        try:
            control(port)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the bench server did not start")


def wrk_ceiling(port: int, args: argparse.Namespace) -> str:
    if not shutil.which("wrk"):
        return "wrk not installed: server ceiling not measured"
    figures = []
    for label, header in (("200", []), ("304", ["-H", 'If-None-Match: "0-0"'])):
        done = subprocess.run(
            ["wrk", "-t2", f"-c{args.workers}", "-d3s", *header,
             f"http://127.0.0.1:{port}/feeds/0.xml"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rate = next(line for line in done.stdout.splitlines() if "Requests/sec" in line)
        figures.append(f"{label}: {float(rate.split()[-1]):,.0f} req/s")
    return f"server ceiling (wrk, one feed, {args.workers} connections): " + ", ".join(figures)


def run_interleaved(args: argparse.Namespace, server_pid: int) -> dict[str, dict[str, Any]]:
    """Both clients, round by round: the same server state and the same machine load for
    both within a round."""
    results: dict[str, dict[str, Any]] = {"ours": {}, "reader": {}}
    clients = {"ours": Client("ours", args), "reader": Client("reader", args)}
    control(args.port, reset=1, mode="validators")
    for name, _label, mode, bump in ROUNDS:
        control(args.port, mode=mode, bump=bump)
        order = ["ours", "reader"] if args.order == "ours-first" else ["reader", "ours"]
        for who in order:
            server_cpu = cpu_seconds(server_pid)
            results[who][name] = clients[who].ask(name)
            results[who][name]["server_cpu"] = cpu_seconds(server_pid) - server_cpu
    for who, client in clients.items():
        results[who]["maxrss_mb"] = client.finish()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve", "client"])
    parser.add_argument("which", nargs="?", choices=["ours", "reader"])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--hosts", type=int, default=16, help="loopback addresses served")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--order", choices=["ours-first", "reader-first"], default="ours-first")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.hosts, args.feeds, args.entries)
        return
    if args.mode == "client":
        (client_ours if args.which == "ours" else client_reader)(args)
        return

    args.port = args.port or free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", "--port", str(args.port), "--hosts", str(args.hosts),
         "--feeds", str(args.feeds), "--entries", str(args.entries)],
    )  # fmt: skip
    try:
        wait_for(args.port, server)
        print(
            f"{args.feeds} feeds × {args.entries} entries on {args.hosts} loopback hosts; "
            f"{args.workers} workers each; one uvicorn process (httptools, uvloop); "
            f"rounds interleaved, {args.order}; load average {os.getloadavg()[0]:.1f}"
        )
        print(wrk_ceiling(args.port, args))
        results = run_interleaved(args, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
    report(results["ours"], results["reader"])


def report(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    print()
    print(
        f"{'round':40} {'aggregator':>11} {'reader':>9} {'ratio':>6} {'goal':>6}         "
        "CPU (ours / reader / server in our round)"
    )
    for name, label, _mode, _bump in ROUNDS:
        a, r = ours[name], theirs[name]
        ratio = a["seconds"] / r["seconds"]
        verdict = "ok" if ratio <= GOALS[name] else "MISSED"
        print(
            f"{name} {label:38} {a['seconds']:10.2f}s {r['seconds']:8.2f}s {ratio:6.2f} "
            f"{'≤ ' + format(GOALS[name], '.1f'):>6} {verdict:6} "
            f"{a['cpu']:6.2f}s / {r['cpu']:.2f}s / {a['server_cpu']:.2f}s"
        )
    memory_ok = ours["maxrss_mb"] < MEMORY_GOAL_MB
    print(
        f"{'peak memory (ru_maxrss of each client)':40} {ours['maxrss_mb']:9.0f}MB "
        f"{theirs['maxrss_mb']:7.0f}MB        < {MEMORY_GOAL_MB} MB "
        + ("ok" if memory_ok else "MISSED")
    )
    last = ROUNDS[-1][0]
    print(
        f"entries stored after the rounds: aggregator {ours[last]['entries']}, "
        f"reader {theirs[last]['entries']}"
    )


if __name__ == "__main__":
    main()
