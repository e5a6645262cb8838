"""Cached feeds answered inside the HTTP connection (``aggregator.web.fastpath``), over real
sockets: the same bytes as the ASGI path, in order when pipelined, connections closed when
the client asks or idles, and a new approval served at once."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import uvicorn
from newsroom import COURTS_TITLE, MUSK_TITLE, TOKENS, Newsroom, free_port

from aggregator.publishing.representation import Representation
from aggregator.web.fastpath import protocol_for

FEED = "/feeds/published.atom"
# uvicorn percent-decodes this to FEED for the ASGI app; the fast path leaves it alone.
FEED_THROUGH_ASGI = "/feeds/published%2Eatom"


@dataclass
class Served:
    port: int
    looked_up: list[str] = field(default_factory=list)

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Reply:
        return self.request(method, path, None, headers or {})

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            return Reply(
                response.status,
                [(k.lower(), v) for k, v in response.getheaders() if k.lower() != "date"],
                response.read(),
            )
        finally:
            connection.close()


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]  # in the order sent, without Date
    body: bytes

    def header(self, name: str) -> str:
        return dict(self.headers)[name]


@contextmanager
def serving(newsroom: Newsroom, keep_alive: float = 5.0) -> Iterator[Served]:
    """The app under uvicorn with the fast-path protocol, as ``aggregator serve`` runs it."""
    app = newsroom.app()
    served = Served(free_port())

    def lookup(key: str) -> Representation | None:
        served.looked_up.append(key)
        return app.state.cache.fresh(key)  # type: ignore[no-any-return]

    config = uvicorn.Config(
        app,
        http=protocol_for(lookup),
        host="127.0.0.1",
        port=served.port,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def raw_exchange(port: int, request: bytes, responses: int) -> tuple[bytes, bool]:
    """Send ``request`` in one write; read until ``responses`` complete answers arrived.
    Returns what was read and whether the server then closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        received = b""
        while len(split_responses(received)) < responses:
            chunk = client.recv(65536)
            assert chunk, f"connection closed after {received[:300]!r}"
            received += chunk
        client.settimeout(0.5)
        try:
            closed = client.recv(1) == b""
        except TimeoutError:
            closed = False
    return received, closed


def split_responses(data: bytes) -> list[tuple[bytes, bytes]]:
    """The complete responses at the start of ``data``: (status line, body) each."""
    responses = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            break
        responses.append((head.split(b"\r\n")[0], rest[:length]))
        data = rest[length:]
    return responses


def status_lines(data: bytes) -> list[bytes]:
    return [status for status, _ in split_responses(data)]


@pytest.fixture
def published(newsroom: Newsroom) -> Newsroom:
    newsroom.approve(MUSK_TITLE)
    return newsroom


def test_cached_answers_are_the_bytes_the_asgi_path_sends(published: Newsroom) -> None:
    with serving(published) as served:
        first = served.get(FEED)  # renders, through the app
        assert first.status == 200 and b"<entry" in first.body
        etag = first.header("etag")
        gzip_etag = served.get(FEED, {"Accept-Encoding": "gzip"}).header("etag")
        variants: list[tuple[str, dict[str, str]]] = [
            ("GET", {}),
            ("GET", {"Accept-Encoding": "gzip, deflate"}),
            ("GET", {"If-None-Match": etag}),
            ("GET", {"If-None-Match": gzip_etag, "Accept-Encoding": "gzip"}),
            ("GET", {"If-None-Match": '"stale"'}),
            ("GET", {"If-Modified-Since": first.header("last-modified")}),
            ("HEAD", {}),
            ("HEAD", {"If-None-Match": etag}),
        ]
        for method, headers in variants:
            served.looked_up.clear()
            fast = served.get(FEED, headers, method)
            assert served.looked_up == [FEED], (method, headers)  # answered in the protocol
            slow = served.get(FEED_THROUGH_ASGI, headers, method)
            assert served.looked_up == [FEED], "the percent-encoded path must reach the app"
            assert (fast.status, fast.headers, fast.body) == (slow.status, slow.headers, slow.body)
        statuses = [served.get(FEED, h, m).status for m, h in variants]
        assert statuses == [200, 200, 304, 304, 200, 304, 200, 304]


def test_pipelined_requests_are_answered_in_order(published: Newsroom) -> None:
    with serving(published) as served:
        etag = served.get(FEED).header("etag")
        pipelined = (
            f"GET {FEED} HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET {FEED} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
            "GET /feeds/published.nope HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET {FEED} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
        ).encode()
        received, closed = raw_exchange(served.port, pipelined, 5)

    assert status_lines(received) == [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 304 Not Modified",
    ]
    assert received.count(b"<feed") == 1 and b"ok\n" in received
    assert not closed  # keep-alive: the connection waits for more


@pytest.mark.parametrize(
    "request_line",
    [
        f"GET {FEED} HTTP/1.0\r\n\r\n",
        f"GET {FEED} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ],
)
def test_clients_that_ask_to_close_get_one_answer_then_eof(
    published: Newsroom, request_line: str
) -> None:
    with serving(published) as served:
        served.get(FEED)  # cached
        received, closed = raw_exchange(served.port, request_line.encode(), 1)

    assert status_lines(received) == [b"HTTP/1.1 200 OK"]
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert closed


def test_idle_connections_close_after_the_keep_alive_timeout_busy_ones_stay(
    published: Newsroom,
) -> None:
    request = f"GET {FEED} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with serving(published, keep_alive=0.6) as served:
        served.get(FEED)  # cached
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as client:
            for _ in range(6):  # 1.2 s of use, twice the timeout, never idle for 0.6 s
                client.sendall(request)
                received = b""
                while len(split_responses(received)) < 1:
                    chunk = client.recv(65536)
                    assert chunk, "closed while in use"
                    received += chunk
                time.sleep(0.2)
            started = time.monotonic()
            assert client.recv(1) == b""  # blocks until the server closes the idle connection
            waited = time.monotonic() - started
    assert 0.2 < waited < 2.0, waited


def test_an_approval_through_the_api_is_served_at_once(published: Newsroom) -> None:
    courts = published.draft(COURTS_TITLE)
    with serving(published) as served:
        etag = served.get(FEED).header("etag")
        assert served.get(FEED, {"If-None-Match": etag}).status == 304
        approved = served.request(
            "POST",
            f"/api/drafts/{courts.id}/approve",
            json.dumps({"version": courts.version}).encode(),
            {"Authorization": f"Bearer {TOKENS['Camille']}", "Content-Type": "application/json"},
        )
        assert approved.status == 200, approved.body
        again = served.get(FEED, {"If-None-Match": etag})

    assert again.status == 200
    assert again.body.count(b"<entry") == 2
