"""Upstream servers that misbehave on purpose, over real HTTP on 127.0.0.1.

``HostileServer`` answers each registered path with a behaviour: a server that never
answers, one that sends its headers and then trickles a byte at a time, a body far larger
than allowed (with or without Content-Length), a gzip bomb, redirects, and a slow answer
that records how many requests were in flight at once (per Host header and in total).
The bodies of broken feeds (truncated XML, entity blow-ups, XXE) are plain functions.

Standard library only, like servers.py.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from typing import ClassVar

from servers import LocalServer, _QuietHandler

Behaviour = Callable[["_HostileHandler"], None]
MIB = 1024 * 1024


class _HostileHandler(_QuietHandler):
    hostile: ClassVar[HostileServer]

    def do_GET(self) -> None:
        behaviour = self.hostile._enter(self)
        try:
            if behaviour is None:
                self.send_body(404, b"no route\n", {"Content-Type": "text/plain"})
            else:
                behaviour(self)
        finally:
            self.hostile._leave(self)


class HostileServer(LocalServer):
    """Paths -> behaviours. Counts requests, and the most in flight at once."""

    def __init__(self) -> None:
        self._behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()  # by Host header
        self.max_in_flight: Counter[str] = Counter()
        self.max_in_flight_total = 0
        self.trickled_bytes: dict[str, int] = {}  # path -> bytes sent before the client left
        handler = type("HostileHandler", (_HostileHandler,), {"hostile": self})
        super().__init__(handler)

    def add(self, path: str, behaviour: Behaviour) -> str:
        with self._lock:
            self._behaviours[path] = behaviour
        return self.url(path)

    def _enter(self, handler: _HostileHandler) -> Behaviour | None:
        host = handler.headers.get("Host", "")
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.hits[path] += 1
            self.in_flight[host] += 1
            self.max_in_flight[host] = max(self.max_in_flight[host], self.in_flight[host])
            total = sum(self.in_flight.values())
            self.max_in_flight_total = max(self.max_in_flight_total, total)
            return self._behaviours.get(path)

    def _leave(self, handler: _HostileHandler) -> None:
        with self._lock:
            self.in_flight[handler.headers.get("Host", "")] -= 1

    def _trickled(self, path: str, sent: int) -> None:
        with self._lock:
            self.trickled_bytes[path] = sent


# ------------------------------------------------------------------------------ behaviours


def static(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    def answer(handler: _HostileHandler) -> None:
        all_headers = {"Content-Type": "application/rss+xml", **(headers or {})}
        handler.send_body(status, body, all_headers)

    return answer


def never_answers() -> Behaviour:
    """Accept the connection, read the request, and say nothing until the server closes."""

    def answer(handler: _HostileHandler) -> None:
        handler.closing.wait()
        handler.close_connection = True

    return answer


def trickle(every: float = 1.0, total: int = 10_000) -> Behaviour:
    """Send the headers at once, then one byte of a feed every ``every`` seconds."""

    def answer(handler: _HostileHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        sent = 0
        try:
            while sent < total and not handler.closing.wait(every):
                handler.wfile.write(b"<" if sent == 0 else b" ")
                handler.wfile.flush()
                sent += 1
        except OSError:
            pass  # the client gave up: what the test wants to see
        handler.hostile._trickled(handler.path, sent)
        handler.close_connection = True

    return answer


def big_body(size: int, *, declare_length: bool) -> Behaviour:
    """``size`` bytes of an endless feed, announced or not by Content-Length."""
    chunk = b"<item><title>filler</title></item>\n" * 2000

    def answer(handler: _HostileHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        if declare_length:
            handler.send_header("Content-Length", str(size))
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        sent = 0
        try:
            handler.wfile.write(b'<rss version="2.0"><channel><title>big</title>\n')
            while sent < size and not handler.closing.is_set():
                piece = chunk[: size - sent]
                handler.wfile.write(piece)
                sent += len(piece)
        except OSError:
            pass  # the client stopped reading
        handler.close_connection = True

    return answer


@functools.cache
def gzip_bomb_bytes(decoded_mib: int = 1024) -> bytes:
    """About 1 MiB of gzip that decodes to ``decoded_mib`` MiB of zeros (64 MiB members)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    member = b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush()
    return member * max(1, decoded_mib // 64)


def gzip_bomb(decoded_mib: int = 1024) -> Behaviour:
    return static(
        gzip_bomb_bytes(decoded_mib),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"},
    )


def redirect(location: str, status: int = 302) -> Behaviour:
    def answer(handler: _HostileHandler) -> None:
        handler.send_body(status, b"", {"Location": location})

    return answer


def slow(delay: float, body: bytes) -> Behaviour:
    """Answer after ``delay`` seconds: long enough for parallel requests to overlap."""

    def answer(handler: _HostileHandler) -> None:
        handler.closing.wait(delay)
        handler.send_body(200, body, {"Content-Type": "application/rss+xml"})

    return answer


# ------------------------------------------------------------------------------ broken feeds


def rss(items: int = 2, title: str = "A feed", prefix: str = "item") -> bytes:
    entries = "".join(
        f"<item><title>{prefix} {n}</title><guid>{prefix}-{n}</guid>"
        f"<link>https://example.org/{prefix}/{n}</link>"
        f"<description>Text of {prefix} {n}.</description></item>"
        for n in range(1, items + 1)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}'
        f"</title><link>https://example.org/</link>{entries}</channel></rss>"
    ).encode()


def quadratic_blowup(entity_bytes: int = 50_000, references: int = 5_000) -> bytes:
    """~65 KiB that an XML parser expanding entities turns into ~250 MB."""
    references_text = "&a;" * references
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{"A" * entity_bytes}">]>'
        f'<rss version="2.0"><channel><title>Blow-up</title><item><title>big</title>'
        f"<guid>blowup-1</guid><description>{references_text}</description></item>"
        f"</channel></rss>"
    ).encode()


def billion_laughs() -> bytes:
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [{"".join(levels)}]>'
        f'<rss version="2.0"><channel><title>Laughs</title><item><title>&lol9;</title>'
        f"<guid>laughs-1</guid></item></channel></rss>"
    ).encode()


def xxe(path: str = "/etc/passwd") -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{path}">]>'
        f'<rss version="2.0"><channel><title>XXE</title><item><title>secret &xxe;</title>'
        f"<guid>xxe-1</guid><description>&xxe;</description></item></channel></rss>"
    ).encode()


def truncated(feed: bytes, marker: bytes = b"<item>", keep_items: int = 2) -> bytes:
    """``feed`` cut in the middle of item number keep_items + 1."""
    start = -1
    for _ in range(keep_items + 1):
        start = feed.index(marker, start + 1)
    return feed[: start + len(marker) + 200]
