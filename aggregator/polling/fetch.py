"""HTTP only: conditional GET, redirects, deadlines, size cap, SSRF guard, Retry-After,
a feed's own request headers for its own host (``Credentials``).

All interpretation of HTTP lives here; callers get a ``FetchResult`` or a ``FetchError``
whose message a person can read, whatever the URL (a malformed one is an
``InvalidURLError`` naming it, never an exception of httpx's). The socket level (one
checked DNS answer per connection, the per-request deadline on every read) is in
``connect``.
"""

from __future__ import annotations

import email.utils
import http
import logging
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import httpx

from aggregator import __version__
from aggregator.config import FetchSettings
from aggregator.errors import BlockedURLError, FetchError, InvalidURLError
from aggregator.i18n import ENGLISH
from aggregator.polling.connect import (
    HostClients,
    PinnedBackend,
    PinnedTransport,
    Resolver,
    end_deadline,
    start_deadline,
    system_resolver,
)

PROJECT_URL = "https://github.com/aggregator-project/aggregator"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
PERMANENT_REDIRECTS = {301, 308}
MIB = 1024 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}

log = logging.getLogger("aggregator.polling.fetch")


@dataclass(frozen=True)
class FetchResult:
    url: str  # the URL finally answered
    status: int
    body: bytes
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    permanent_url: str | None = None  # set when every hop was a permanent redirect

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        value: str | None = self.headers.get("etag")
        return value

    @property
    def last_modified(self) -> str | None:
        value: str | None = self.headers.get("last-modified")
        return value


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL, as the fetcher compares origins; None when
    the URL cannot be fetched. The port is always written, so that ``http://a/`` and
    ``http://a:80/`` are one origin and ``http://a:8080/`` another."""
    try:
        return _origin(_checked_url(url, url))
    except InvalidURLError:
        return None


def _origin(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{url.port or DEFAULT_PORTS[url.scheme]}"


def _checked_url(url: str, first: str) -> httpx.URL:
    """The URL as httpx will send it, or an InvalidURLError that names it and its fault.

    httpx raises its own InvalidURL (not an HTTPError), and IDNA a UnicodeError, for
    addresses such as ``0177.0.0.1``, ``127.000.000.001`` or ``①②⑦.0.0.1``; they are
    refused here, before any slot, pool or socket is involved.
    """
    where = "the URL" if url == first else "the server redirected to"
    try:
        parsed = httpx.URL(url)
        host, port = parsed.host, parsed.port  # decoding the host may fail too (IDNA)
    except UnicodeError as exc:  # IDNA, before ValueError: it is one
        raise InvalidURLError(
            f"{where} {url!r}, which cannot be fetched: its host name is not valid ({exc})"
        ) from None
    except (httpx.InvalidURL, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise InvalidURLError(
            f"{where} {url!r}, which cannot be fetched: {reason[:1].lower()}{reason[1:]}"
        ) from None
    if parsed.scheme not in ("http", "https"):
        named = f": {url!r}" if url == first else f" (redirected to {url})"
        raise InvalidURLError(f"only http and https URLs can be fetched{named}")
    if not host:
        raise InvalidURLError(f"the URL has no host name: {url}")
    if port is not None and not 0 < port < 65536:
        raise InvalidURLError(
            f"{where} {url!r}, which cannot be fetched: port {port} is out of range"
        )
    return parsed


def _check_location(response: httpx.Response) -> None:
    """Refuse a redirect whose Location cannot be fetched, naming it.

    httpx builds the next request of a redirect even when it is not to follow it, and
    turns a Location it cannot read into a RemoteProtocolError that looks like a dropped
    connection and hides the URL (or lets an IDNA error through). This response hook runs
    first.
    """
    if not response.has_redirect_location:
        return
    location = response.headers["location"].strip()
    try:
        following = urljoin(str(response.request.url), location)
    except ValueError as exc:  # urllib: "Invalid IPv6 URL", a bad port
        raise InvalidURLError(
            f"the server redirected to {location!r}, which cannot be fetched: {exc}",
            status=response.status_code,
        ) from None
    _checked_url(following, "")


def user_agent(settings: FetchSettings) -> str:
    return settings.user_agent or f"aggregator/{__version__} (+{PROJECT_URL})"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait, from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Credentials:
    """Request headers (a Cookie, an Authorization) that only one host may receive: the
    host of a feed URL written in config.toml. Every hop of a request is checked, so a
    redirect elsewhere does not carry them, nor does a plain-http hop when the feed's URL
    is https. Its ``repr`` names the headers, never their values."""

    host: str
    headers: Mapping[str, str]
    https_only: bool = True

    @classmethod
    def for_url(cls, url: str, headers: Mapping[str, str]) -> Credentials:
        """Headers for the host of ``url`` (https only when ``url`` is https)."""
        parsed = _checked_url(url, url)
        return cls(host=parsed.host, headers=dict(headers), https_only=parsed.scheme == "https")

    def applies_to(self, url: httpx.URL) -> bool:
        return url.host == self.host and (url.scheme == "https" or not self.https_only)

    def for_hop(self, url: httpx.URL) -> Mapping[str, str]:
        """The headers a request to ``url`` carries: all of them on their host, else none."""
        return self.headers if self.applies_to(url) else {}

    def __repr__(self) -> str:
        names = ", ".join(self.headers)
        return f"Credentials(host={self.host!r}, headers=[{names}], https_only={self.https_only})"


class BodyDecoder:
    """Content-Encoding decoding that never holds more than ``limit`` decoded bytes.

    zlib is asked for at most the bytes still allowed, so a gzip bomb costs at most the
    limit in memory before it is refused, whatever its ratio.
    """

    def __init__(self, content_encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        for coding in codings:
            if coding not in ("gzip", "x-gzip", "deflate"):
                raise FetchError(
                    f"the server used a compression this program does not read ({coding})"
                )
        if len(codings) > 1:
            raise FetchError(f"the server compressed the body several times ({content_encoding})")
        self.coding = codings[0] if codings else None
        self._zlib: zlib._Decompress | None = None
        self._raw_deflate = False

    def _decompressor(self) -> zlib._Decompress:
        if self._zlib is None:
            # 32 + 15: zlib or gzip header, detected; raw deflate is tried if that fails.
            wbits = -15 if self._raw_deflate else (47 if self.coding != "deflate" else 15)
            self._zlib = zlib.decompressobj(wbits)
        return self._zlib

    def feed(self, data: bytes) -> bytes:
        if self.coding is None:
            return self._count(data)
        pieces: list[bytes] = []
        produced = 0
        while data:
            decompressor = self._decompressor()
            budget = self.limit - self.size - produced
            try:
                piece = decompressor.decompress(data, budget + 1)
            except zlib.error as exc:
                if self.coding == "deflate" and not self._raw_deflate and self.size == 0:
                    self._raw_deflate, self._zlib = True, None
                    continue
                raise FetchError(f"the compressed body is corrupt ({exc})") from None
            pieces.append(piece)
            produced += len(piece)
            if produced > budget:
                break
            if decompressor.eof and decompressor.unused_data:
                data, self._zlib = decompressor.unused_data, None  # another gzip member
                continue
            data = decompressor.unconsumed_tail
        return self._count(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise FetchError(
                f"the response is larger than {size_in_words(self.limit)}"
                + (" once decompressed" if self.coding else "")
                + "; abandoned"
            )
        return data


class HostSlots:
    """A global and a per-host limit on requests in flight (politeness and resources)."""

    def __init__(self, total: int, per_host: int) -> None:
        self._total = threading.BoundedSemaphore(max(1, total))
        self._per_host_limit = max(1, per_host)
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            host_slots = self._hosts.get(host)
            if host_slots is None:
                host_slots = self._hosts[host] = threading.BoundedSemaphore(self._per_host_limit)
        with host_slots, self._total:
            yield


class Fetcher:
    """HTTP for the whole process: small connection pools per host, shared limits.

    Guarded pools connect only to public addresses. The others may reach private ones:
    they serve exactly the origin (scheme, host and port) of a feed URL written in
    config.toml, and the URLs of a feed whose ``allow_private_networks`` is true.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver = system_resolver,
    ):
        self.settings = settings
        self.slots = HostSlots(settings.concurrency, settings.per_host_concurrency)
        per_host = max(settings.per_host_concurrency, 1)
        limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        tls = httpx.create_ssl_context(trust_env=False)  # one, shared: building one is slow
        backends = {
            private: PinnedBackend(allow_private=private, resolver=resolver)
            for private in (False, True)
        }

        def build(allow_private: bool) -> httpx.Client:
            return self._client(PinnedTransport(backends[allow_private], limits, tls))

        self.clients = HostClients(build)

    def _client(self, transport: httpx.BaseTransport) -> httpx.Client:
        return httpx.Client(
            headers={"User-Agent": user_agent(self.settings), "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(float(self.settings.timeout)),
            follow_redirects=False,
            event_hooks={"response": [_check_location]},
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        self.clients.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        trusted: bool = False,
        trusted_origin: str | None = None,
        allow_private: bool | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
        credentials: Credentials | None = None,
    ) -> FetchResult:
        """GET with conditional headers, guarded redirects and hard limits.

        ``trusted`` marks a URL written by the operator (a feed in config.toml): its own
        origin may be private. ``trusted_origin`` names that origin (``origin_of`` of the
        URL written) when the URL fetched is another one (a feed moved by a 301, a feed
        link found in its page). Every other origin, including another port of the same
        host and every redirect hop elsewhere, goes through the SSRF guard, unless
        ``allow_private`` (default: ``[fetch] allow_private_networks``) lifts it for
        this request. ``credentials`` are sent on the hops to their host only.
        """
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        if trusted and trusted_origin is None:
            trusted_origin = origin_of(url)
        if allow_private is None:
            allow_private = self.settings.allow_private_networks
        current, all_permanent, visited = url, True, [url]
        # The deadline starts once the first slot is ours: waiting for a polite turn on a busy
        # host is not the server's slowness.
        deadline: Token[float | None] | None = None
        try:
            while True:
                target = _checked_url(current, url)
                host = target.host
                private = allow_private or _origin(target) == trusted_origin
                try:
                    with (
                        self.slots.slot(host),
                        self.clients.client(host, allow_private=private) as client,
                    ):
                        if deadline is None:
                            deadline = start_deadline(float(self.settings.timeout))
                        sent = credentials.for_hop(target) if credentials else {}
                        hop = httpx.Headers(headers)
                        hop.update(sent)  # a feed's own header wins, whatever its case
                        status, response_headers, body = self._get_once(client, target, hop)
                    # Which headers went is said by name only: their values are secrets.
                    shown = f" (with {', '.join(sent)})" if sent else ""
                    log.debug("GET %s: %s%s", target, status, shown)
                except BlockedURLError as exc:
                    if current != url:
                        raise BlockedURLError(f"redirected to {current}, {exc}") from None
                    raise
                if status in REDIRECT_STATUSES and "location" in response_headers:
                    location = response_headers["location"].strip()
                    try:
                        following = urljoin(current, location)
                    except ValueError as exc:  # urllib: "Invalid IPv6 URL", a bad port
                        raise InvalidURLError(
                            f"the server redirected to {location!r}, which cannot be fetched:"
                            f" {exc}",
                            status=status,
                        ) from None
                    if len(visited) > self.settings.max_redirects:
                        loop = " in a loop" if following in visited else ""
                        raise FetchError(
                            f"too many redirects: more than {self.settings.max_redirects}"
                            f"{loop} (last to {following})",
                            status=status,
                        )
                    all_permanent = all_permanent and status in PERMANENT_REDIRECTS
                    visited.append(following)
                    current = following
                    # Validators belong to the URL asked for, not to where it redirects.
                    headers.pop("If-None-Match", None)
                    headers.pop("If-Modified-Since", None)
                    continue
                result = FetchResult(
                    url=current,
                    status=status,
                    body=body,
                    headers=response_headers,
                    permanent_url=current if len(visited) > 1 and all_permanent else None,
                )
                return self._check_status(result)
        finally:
            if deadline is not None:
                end_deadline(deadline)

    def _get_once(
        self, client: httpx.Client, url: httpx.URL, headers: httpx.Headers
    ) -> tuple[int, httpx.Headers, bytes]:
        timeout = float(self.settings.timeout)
        limit = self.settings.max_body_bytes
        answered = False
        try:
            with client.stream("GET", url, headers=headers) as response:
                answered = True
                status = response.status_code
                if status in REDIRECT_STATUSES or status == 304:
                    _drain(response)
                    return status, response.headers, b""
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise FetchError(
                        f"the server announced {size_in_words(int(declared))}, more than the"
                        f" {size_in_words(limit)} allowed; not downloaded",
                        status=status,
                    )
                decoder = BodyDecoder(response.headers.get("content-encoding", ""), limit)
                chunks = [decoder.feed(chunk) for chunk in response.iter_raw()]
                return status, response.headers, b"".join(chunks)
        except httpx.TimeoutException:
            if answered:
                raise FetchError(
                    f"the server was too slow: the response took longer than {timeout:g} s"
                    " and was abandoned"
                ) from None
            raise FetchError(f"the server did not answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(_describe_transport_error(exc, answered)) from None
        except (httpx.InvalidURL, UnicodeError) as exc:
            # What _checked_url let through and httpx or the socket layer still refused.
            raise InvalidURLError(f"the URL {str(url)!r} cannot be fetched: {exc}") from None

    @staticmethod
    def _check_status(result: FetchResult) -> FetchResult:
        status = result.status
        if status == 304 or 200 <= status < 300:
            return result
        try:
            label = f"{status} {http.HTTPStatus(status).phrase}"
        except ValueError:
            label = f"HTTP {status}"
        retry_after = parse_retry_after(result.headers.get("retry-after"))
        if status == 410:
            raise FetchError(
                f"the feed is gone: the server answered {label}", status=410, gone=True
            )
        if status in (429, 503):
            reason = (
                "the server asked us to slow down"
                if status == 429
                else "the server is unavailable for now"
            )
            wait = f"; it asked us to wait {ENGLISH.duration(retry_after)}" if retry_after else ""
            raise FetchError(f"{reason} ({label}){wait}", status=status, retry_after=retry_after)
        if status == 404:
            raise FetchError(f"nothing at this address ({label}): check the URL", status=404)
        if status in (401, 403):
            raise FetchError(
                f"access refused ({label}): the site wants a login or blocks this program",
                status=status,
            )
        if status >= 500:
            raise FetchError(f"the server failed ({label})", status=status)
        raise FetchError(f"the server refused the request ({label})", status=status)


def _drain(response: httpx.Response, limit: int = 64 * 1024) -> None:
    """Read a body nobody needs (a redirect's, a 304's), so that the connection can be
    used again; a large one is not worth it, and the connection is closed instead."""
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > limit:
            return


def size_in_words(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.3g} MiB"
    if size >= 1024:
        return f"{size / 1024:.3g} KiB"
    return f"{size} bytes"


def _describe_transport_error(exc: httpx.HTTPError, answered: bool) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, httpx.ConnectError):
        if "connection refused" in lowered:
            return "connection refused: nothing listens at this address (is the site down?)"
        if "certificate" in lowered or "ssl" in lowered:
            return f"the secure connection failed ({text})"
        if "network is unreachable" in lowered:
            return "the network is unreachable (no connection to the internet?)"
        return f"cannot connect to the server ({text})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        if answered:
            return "the server cut the connection before the end of the response"
        return "the server closed the connection without answering"
    if isinstance(exc, httpx.DecodingError):
        return f"the response could not be decoded ({text})"
    return text
