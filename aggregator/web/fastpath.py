"""Cached feeds and articles answered inside the HTTP connection, before any ASGI work.

Feed readers poll the same few URLs, most of the time with a validator that earns a 304:
the answer is already rendered (``representation.Answer``), so what remains per request is
the server's own machinery. uvicorn's httptools protocol spends most of a 304 building the
ASGI scope, a task and its send events; this subclass writes a cached answer to the
transport as soon as the request's headers are parsed, and hands every other request (not
cached, not a plain GET or HEAD, pipelined behind another, a client not reading) to uvicorn
unchanged. The bytes on the wire are those the ASGI path sends for the same request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from aggregator.publishing.representation import Representation, answer_to

Lookup = Callable[[str], Representation | None]


class _Answered:
    """What stands in for uvicorn's request cycle once this path has answered: the parser's
    later callbacks (body, message complete, connection lost) see a finished response."""

    response_complete = True

    class _NoEvent:
        def set(self) -> None:
            pass

    message_event = _NoEvent()


ANSWERED: Any = _Answered()


class CachedAnswerProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering cached representations itself."""

    lookup: Lookup = staticmethod(lambda key: None)

    _defaults_source: list[tuple[bytes, bytes]] | None = None
    _defaults_block = b""
    # When the connection last fell idle, None while a request is in hand. uvicorn cancels
    # and arms a keep-alive timer around every request; here one timer per connection
    # checks this when it fires, which costs a float per request instead of two timers.
    _idle_since: float | None = None

    def on_message_begin(self) -> None:
        # The ASGI scope waits until a request turns out to need it.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        rep = self._cached_representation()
        if rep is None:
            self._begin_asgi_request()
            super().on_headers_complete()
            return
        answer = answer_to(rep, self.headers)
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        head = STATUS_LINE[answer.status] + self._default_headers()
        if not keep_alive:
            head += b"connection: close\r\n"
        head += answer.head
        self.cycle = ANSWERED
        if answer.body and self.parser.get_method() != b"HEAD":
            self.transport.writelines((head, answer.body))
        else:
            self.transport.write(head)
        # What on_response_complete does, less what cannot apply here: nothing is pipelined
        # behind this request and reading was not paused (else uvicorn would be answering).
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
        elif not self.transport.is_closing():
            self._fall_idle()

    def on_message_complete(self) -> None:
        if self.cycle is not ANSWERED:
            super().on_message_complete()

    # ------------------------------------------------------------ keep-alive, lazily

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._fall_idle()

    def _fall_idle(self) -> None:
        """The connection waits for its next request: start counting, arm the timer if
        none is armed."""
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # a request is in hand; its answer arms the timer again
        remaining = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self.timeout_keep_alive_task = self.loop.call_later(
                remaining, self.timeout_keep_alive_handler
            )
        else:
            super().timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    # ------------------------------------------------------------ helpers

    def _begin_asgi_request(self) -> None:
        """Build the scope uvicorn's own ``on_message_begin`` would have, around what the
        parser has already given (URL, headers)."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect_100_continue
        self.scope["headers"] = headers

    def _cached_representation(self) -> Representation | None:
        """The representation to answer with here, or None to let uvicorn handle it."""
        if self.flow.write_paused or self.pipeline or self.root_path:
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind a request still being answered
        if self.parser.get_method() not in (b"GET", b"HEAD") or self.parser.should_upgrade():
            return None
        url = self.url
        # The cache's keys are origin-form paths with the query as sent (``request_key``);
        # percent-decoding, fragments and absolute forms are left to uvicorn.
        if url[:1] != b"/" or not url.isascii() or b"%" in url or b"#" in url:
            return None
        return self.lookup(url.decode("ascii"))

    def _default_headers(self) -> bytes:
        """The server's Date and Server lines; uvicorn swaps the list once a second."""
        source = self.server_state.default_headers
        if source is not CachedAnswerProtocol._defaults_source:
            CachedAnswerProtocol._defaults_block = b"".join(
                name + b": " + value + b"\r\n" for name, value in source
            )
            CachedAnswerProtocol._defaults_source = source
        return CachedAnswerProtocol._defaults_block


def protocol_for(lookup: Lookup) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn for an app whose cache answers through ``lookup``."""
    return type("CachedAnswers", (CachedAnswerProtocol,), {"lookup": staticmethod(lookup)})
