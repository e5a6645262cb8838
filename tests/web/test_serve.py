"""``aggregator serve`` answering the publication over real sockets (uvicorn, public API
only): the answer given before routing is byte for byte the routed one, pipelined requests
are answered in order, clients that ask to close get one answer, and an approval through
the API is served at once."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import aggregator_process
from newsroom import COURTS_TITLE, MUSK_TITLE, TOKENS, Newsroom

FEED = "/feeds/published.atom"
# uvicorn percent-decodes this to FEED for the app, whose lookup before routing misses it:
# it takes the routed path to the same publication.
FEED_THROUGH_ROUTES = "/feeds/published%2Eatom"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]  # in the order sent, without Date
    body: bytes

    def header(self, name: str) -> str:
        return dict(self.headers)[name]


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return Reply(
            response.status,
            [(k.lower(), v) for k, v in response.getheaders() if k.lower() != "date"],
            response.read(),
        )
    finally:
        connection.close()


@pytest.fixture
def serving(newsroom: Newsroom) -> Iterator[tuple[Newsroom, int]]:
    """``aggregator serve`` on a newsroom with one published article."""
    newsroom.approve(MUSK_TITLE)
    with aggregator_process(newsroom.config, newsroom.base_url):
        yield newsroom, newsroom.settings.server.port


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


def test_answers_before_routing_are_the_bytes_the_routed_path_sends(
    serving: tuple[Newsroom, int],
) -> None:
    _, port = serving
    first = request(port, "GET", FEED)
    assert first.status == 200 and b"<entry" in first.body
    etag = first.header("etag")
    gzip_etag = request(port, "GET", FEED, {"Accept-Encoding": "gzip"}).header("etag")
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
    statuses = []
    for method, headers in variants:
        direct = request(port, method, FEED, headers)
        routed = request(port, method, FEED_THROUGH_ROUTES, headers)
        assert (direct.status, direct.headers, direct.body) == (
            routed.status,
            routed.headers,
            routed.body,
        ), (method, headers)
        statuses.append(direct.status)
    assert statuses == [200, 200, 304, 304, 200, 304, 200, 304]


def test_pipelined_requests_are_answered_in_order(serving: tuple[Newsroom, int]) -> None:
    _, port = serving
    etag = request(port, "GET", FEED).header("etag")
    pipelined = (
        f"GET {FEED} HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        f"GET {FEED} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
        "GET /feeds/published.nope HTTP/1.1\r\nHost: x\r\n\r\n"
        f"GET {FEED} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
    ).encode()
    received, closed = raw_exchange(port, pipelined, 5)

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
    serving: tuple[Newsroom, int], request_line: str
) -> None:
    _, port = serving
    received, closed = raw_exchange(port, request_line.encode(), 1)

    assert status_lines(received) == [b"HTTP/1.1 200 OK"]
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert closed


def test_an_approval_through_the_api_is_served_at_once(serving: tuple[Newsroom, int]) -> None:
    newsroom, port = serving
    courts = newsroom.draft(COURTS_TITLE)
    etag = request(port, "GET", FEED).header("etag")
    assert request(port, "GET", FEED, {"If-None-Match": etag}).status == 304
    approved = request(
        port,
        "POST",
        f"/api/drafts/{courts.id}/approve",
        {"Authorization": f"Bearer {TOKENS['Camille']}", "Content-Type": "application/json"},
        json.dumps({"version": courts.version}).encode(),
    )
    assert approved.status == 200, approved.body
    again = request(port, "GET", FEED, {"If-None-Match": etag})

    assert again.status == 200
    assert again.body.count(b"<entry") == 2
