"""Polling N feeds: `aggregator poll` beside the `reader` library, as whole processes.

    .venv/bin/python -m bench.poll                 # 500 feeds × 20 entries
    .venv/bin/python -m bench.poll --feeds 100     # quicker

One upstream server process (uvicorn, httptools, uvloop; an ASGI app serving feeds from
memory) listens on several loopback addresses, so that the feeds belong to several hosts as
they do in the world and the per-host politeness limit (2) applies as it would. Each round
runs each client as a new process, the way a user runs it from the shell, process start
and imports included: `aggregator --config … poll --fetch-only` (store the entries, as
reader does; SQLite, ``[fetch] allow_private_networks = true``), and a Python process that
opens reader (``make_reader``) and calls ``update_feeds(workers=16, scheduled=False)``.
Both databases are made and given their feeds beforehand, outside the clock. The rounds
are interleaved (A for one client, then A for the other, then B…), so that both meet the
same server state and, as near as can be, the same load from whatever else runs:

    A  cold: every feed new (200, full body, ETag and Last-Modified)
    B  nothing changed: every feed answers 304 to the stored validators
    D  10 % of the feeds changed (one new entry each); the others answer 304
    C  nothing changed, and the server sends no validators: 200 with the same body

In round B a third process shows the floor under any poller built on these libraries: it
imports httpx and SQLAlchemy and sends the same conditional GETs, storing nothing.

D runs before C: after C a client may hold no validators any more, and D would then measure
something else for one client than for the other. Each process's CPU time and peak memory
(ru_maxrss) come from wait4; the server's CPU time per round is printed too, so it is
visible when the server is what limits a round, and its ceiling is measured with wrk when
wrk is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.servers import free_port

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

READER_SETUP = """
import sys
from reader import make_reader
reader = make_reader(sys.argv[1])
for url in sys.argv[2:]:
    reader.add_feed(url)
reader.close()
"""
READER_UPDATE = """
import sys
from reader import make_reader
reader = make_reader(sys.argv[1])
reader.update_feeds(workers=int(sys.argv[2]), scheduled=False)
for feed in list(reader.get_feeds(broken=True))[:3]:
    print(f"reader error: {feed.url}: {feed.last_exception}", file=sys.stderr)
reader.close()
"""
# What any poller built on httpx and SQLAlchemy pays in round B, before storing anything:
# a process that imports both and sends the same conditional GETs (the ETags the bench's
# server gives) from as many threads, through one pooled client.
FLOOR = """
import sys
from concurrent.futures import ThreadPoolExecutor
import httpx, sqlalchemy.orm
workers, urls = int(sys.argv[1]), sys.argv[2:]
limits = httpx.Limits(max_connections=2 * workers, max_keepalive_connections=2 * workers)
with httpx.Client(limits=limits) as client:
    def get(numbered):
        feed, url = numbered
        status = client.get(url, headers={"If-None-Match": f'"{feed}-0"'}).status_code
        assert status == 304, status
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, enumerate(urls)))
"""
# The console script, as a user runs it.
AGGREGATOR = str(Path(sys.executable).parent / "aggregator")
ROOT = Path(__file__).resolve().parent.parent


def timed_process(command: list[str]) -> dict[str, Any]:
    """Run ``command`` to its end: wall seconds from fork to exit, its CPU and peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for line in [line for line in errors.splitlines() if not line.startswith("INFO ")][:3]:
        print(f"  {Path(command[0]).name}: {line}", file=sys.stderr)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])}… exited {process.returncode}")
    return {
        "seconds": elapsed,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_mb": usage.ru_maxrss / 1024,
    }


class Clients:
    """Both clients' databases, made and subscribed to every feed before the first round."""

    def __init__(self, directory: Path, args: argparse.Namespace) -> None:
        urls = feed_urls(args.port, args.hosts, args.feeds)
        self.ours_database = directory / "aggregator.db"
        self.reader_database = directory / "reader.sqlite"
        self.config = directory / "config.toml"
        self.config.write_text(
            "\n".join(
                [
                    "[database]",
                    f'url = "sqlite:///{self.ours_database}"',
                    "[fetch]",
                    "allow_private_networks = true",
                    f"concurrency = {args.workers}",
                    *(f'[[feeds]]\nurl = "{url}"\nname = "feed {i}"' for i, url in enumerate(urls)),
                    "",
                ]
            ),
            encoding="utf-8",
        )
        subprocess.run([AGGREGATOR, "--config", str(self.config), "db", "upgrade"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run(
            [sys.executable, "-c", READER_SETUP, str(self.reader_database), *urls], check=True
        )
        self.commands = {
            "ours": [AGGREGATOR, "--config", str(self.config), "poll", "--fetch-only"],
            "reader": [
                sys.executable, "-c", READER_UPDATE, str(self.reader_database),
                str(args.workers),
            ],
            "floor": [sys.executable, "-c", FLOOR, str(args.workers), *urls],
        }  # fmt: skip

    def run(self, who: str) -> dict[str, Any]:
        return timed_process(self.commands[who])

    def entries(self) -> dict[str, int]:
        counts = {}
        for who, database in (("ours", self.ours_database), ("reader", self.reader_database)):
            with sqlite3.connect(database) as connection:
                counts[who] = int(connection.execute("SELECT count(*) FROM entries").fetchone()[0])
        return counts


# ---------------------------------------------------------------------------- the run


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
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        clients = Clients(Path(tmp), args)
        control(args.port, reset=1, mode="validators")
        for name, _label, mode, bump in ROUNDS:
            control(args.port, mode=mode, bump=bump)
            order = ["ours", "reader"] if args.order == "ours-first" else ["reader", "ours"]
            for who in order:
                server_cpu = cpu_seconds(server_pid)
                results[who][name] = clients.run(who)
                results[who][name]["server_cpu"] = cpu_seconds(server_pid) - server_cpu
            seconds = {who: f"{results[who][name]['seconds']:.2f} s" for who in order}
            if name == "B":
                results["floor"] = {"B": clients.run("floor")}
                seconds["floor"] = f"{results['floor']['B']['seconds']:.2f} s"
            print(f"  round {name} done: {seconds}", file=sys.stderr, flush=True)
        for who, count in clients.entries().items():
            results[who]["entries"] = count
    for who in ("ours", "reader"):
        figures = results[who]
        figures["maxrss_mb"] = max(figures[name]["maxrss_mb"] for name, *_ in ROUNDS)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
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

    args.port = args.port or free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.poll", "serve", "--port", str(args.port),
         "--hosts", str(args.hosts), "--feeds", str(args.feeds), "--entries", str(args.entries)],
        cwd=ROOT,  # as it was started: python -m bench.poll, from the repository's root
    )  # fmt: skip
    try:
        wait_for(args.port, server)
        print(
            f"{args.feeds} feeds × {args.entries} entries on {args.hosts} loopback hosts; "
            f"{args.workers} workers each; one uvicorn process (httptools, uvloop); "
            f"each round a new process per client; rounds interleaved, {args.order}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(wrk_ceiling(args.port, args))
        results = run_interleaved(args, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
    report(results["ours"], results["reader"], results["floor"])


def report(ours: dict[str, Any], theirs: dict[str, Any], floor: dict[str, Any]) -> None:
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
        f"{'peak memory (largest ru_maxrss)':40} {ours['maxrss_mb']:9.0f}MB "
        f"{theirs['maxrss_mb']:7.0f}MB        < {MEMORY_GOAL_MB} MB "
        + ("ok" if memory_ok else "MISSED")
    )
    print(
        f"entries stored after the rounds: aggregator {ours['entries']}, reader {theirs['entries']}"
    )
    seconds = floor["B"]["seconds"]
    print(
        f"floor of round B (import httpx and SQLAlchemy, the same conditional GETs, nothing "
        f"stored): {seconds:.2f} s, {seconds / theirs['B']['seconds']:.2f} × reader"
    )


if __name__ == "__main__":
    main()
