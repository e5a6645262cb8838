"""Rendered resources ready to send, and the conditional-request rules that choose what to
send: the body, its gzip, or 304 Not Modified.

Everything a response needs is computed once, when the resource is rendered: bodies,
ETags, Last-Modified, and the raw ASGI header lists of the four possible answers. Sending
is then a dictionary lookup and two ``send`` calls, before any routing (``web.AggregatorApp``).
The validators are those nginx gives the same bytes as a static file whose mtime is
``modified`` (``publishing.directory``), so both servers answer alike.
"""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Answer:
    """One of the four answers a representation can give, ready for ASGI."""

    status: int
    headers: RawHeaders = field(repr=False)
    body: bytes = field(repr=False)


def _answer(status: int, headers: dict[str, str], body: bytes) -> Answer:
    raw = [
        (key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()
    ]
    return Answer(status, raw, body)


@dataclass(frozen=True)
class Representation:
    """One rendered resource with its validators and every answer it can give."""

    status: int
    etag: str
    gzip_etag: str
    modified: int  # seconds since the epoch: HTTP dates have no finer precision
    plain: Answer = field(repr=False)
    compressed: Answer = field(repr=False)
    plain_not_modified: Answer = field(repr=False)
    compressed_not_modified: Answer = field(repr=False)

    def matches(self, if_none_match: str) -> bool:
        """Weak comparison (RFC 9110 13.1.2): either encoding's tag names these bytes."""
        if if_none_match == self.etag or if_none_match == self.gzip_etag:
            return True  # what nearly every client sends: the one tag it was given
        for candidate in if_none_match.split(","):
            tag = candidate.strip().removeprefix("W/")
            if tag == "*" or tag in (self.etag, self.gzip_etag):
                return True
        return False

    def answer(
        self, if_none_match: str | None, if_modified_since: str | None, accept_encoding: str
    ) -> Answer:
        """The answer to a request with these headers (RFC 9110 13.2.2: If-None-Match wins
        over If-Modified-Since)."""
        use_gzip = accepts_gzip(accept_encoding)
        if self.status == 200:
            if if_none_match is not None:
                not_modified = self.matches(if_none_match)
            else:
                not_modified = if_modified_since is not None and _not_modified_since(
                    if_modified_since, self.modified
                )
            if not_modified:
                return self.compressed_not_modified if use_gzip else self.plain_not_modified
        return self.compressed if use_gzip else self.plain


def represent(
    body: bytes,
    content_type: str,
    *,
    modified: int,
    max_age: int,
    status: int = 200,
    extra: dict[str, str] | None = None,
) -> Representation:
    """``modified``: seconds since the epoch, the file's mtime in the publication."""
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    # nginx's ETag of a static file (and of its .gz sibling, for gzip_static).
    etag = f'"{modified:x}-{len(body):x}"'
    gzip_etag = f'"{modified:x}-{len(gzipped):x}"'
    moment = modified
    common = {
        "Cache-Control": f"public, max-age={max_age}",
        "Last-Modified": format_datetime(datetime.fromtimestamp(moment, UTC), usegmt=True),
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        **(extra or {}),
    }
    validators = {"Cache-Control": common["Cache-Control"], "Vary": "Accept-Encoding"}
    plain_headers = {
        **common,
        "ETag": etag,
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
    }
    gzip_headers = {
        **common,
        "ETag": gzip_etag,
        "Content-Type": content_type,
        "Content-Encoding": "gzip",
        "Content-Length": str(len(gzipped)),
    }
    return Representation(
        status=status,
        etag=etag,
        gzip_etag=gzip_etag,
        modified=moment,
        plain=_answer(status, plain_headers, body),
        compressed=_answer(status, gzip_headers, gzipped),
        # RFC 9110 15.4.5: a 304 carries what caches need to update their copy, no more.
        plain_not_modified=_answer(304, {**validators, "ETag": etag}, b""),
        compressed_not_modified=_answer(304, {**validators, "ETag": gzip_etag}, b""),
    )


def accepts_gzip(accept_encoding: str) -> bool:
    if "gzip" not in accept_encoding and "*" not in accept_encoding:
        return False
    for part in accept_encoding.split(","):
        name, _, parameters = part.partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        quality = parameters.strip().lower().removeprefix("q=")
        try:
            return not parameters.strip() or float(quality) > 0
        except ValueError:
            return False
    return False


def _not_modified_since(value: str, modified: int) -> bool:
    try:
        since = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return modified <= since.timestamp()


def request_key(scope: Scope) -> str:
    """What a representation is looked up under: the path, and the query as sent if any."""
    query: bytes = scope.get("query_string", b"")
    return f"{scope['path']}?{query.decode('latin-1')}" if query else scope["path"]


def answer_to(rep: Representation, headers: Iterable[tuple[bytes, bytes]]) -> Answer:
    """The answer to a request with these raw headers (names in lower case)."""
    if_none_match = if_modified_since = None
    accept_encoding = ""
    for name, value in headers:
        if name == b"if-none-match":
            if_none_match = value.decode("latin-1")
        elif name == b"if-modified-since":
            if_modified_since = value.decode("latin-1")
        elif name == b"accept-encoding":
            accept_encoding = value.decode("latin-1")
    return rep.answer(if_none_match, if_modified_since, accept_encoding)


async def send_representation(rep: Representation, scope: Scope, send: Send) -> None:
    answer = answer_to(rep, scope["headers"])
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    body = b"" if scope["method"] == "HEAD" else answer.body
    await send({"type": "http.response.body", "body": body})
