"""HTTP only: conditional GET, redirects, deadlines, size cap, SSRF guard, Retry-After.

All interpretation of HTTP lives here; callers get a ``FetchResult`` or a ``FetchError``
whose message a person can read.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpx

from aggregator import __version__
from aggregator.config import FetchSettings
from aggregator.errors import BlockedURLError, FetchError

PROJECT_URL = "https://github.com/aggregator-project/aggregator"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
PERMANENT_REDIRECTS = {301, 308}


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
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def check_public_address(url: str) -> None:
    """Raise BlockedURLError unless every address the host resolves to is public."""
    host = urlsplit(url).hostname
    if not host:
        raise BlockedURLError(f"{url}: no host in URL")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"{url}: cannot resolve host {host!r} ({exc})") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise BlockedURLError(
                f"{url}: refused to fetch, {host} resolves to the non-public address {address}"
                " (set [fetch] allow_private_networks = true to allow it)"
            )


class Fetcher:
    """One pooled HTTP client for the whole process."""

    def __init__(self, settings: FetchSettings, *, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self.client = httpx.Client(
            headers={"User-Agent": user_agent(settings), "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(float(settings.timeout)),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.concurrency * 2),
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        trusted: bool = False,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
    ) -> FetchResult:
        """GET with conditional headers, guarded redirects and hard limits.

        ``trusted`` marks a URL written by the operator (a feed in config.toml): its own host
        may be private; every other URL and every redirect hop goes through the SSRF guard.
        """
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = time.monotonic() + float(self.settings.timeout)
        current, all_permanent, hops = url, True, 0
        trusted_host = urlsplit(url).hostname if trusted else None
        while True:
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError(f"{current}: only http and https URLs can be fetched")
            if (
                not self.settings.allow_private_networks
                and urlsplit(current).hostname != trusted_host
            ):
                check_public_address(current)
            status, response_headers, body = self._get_once(current, headers, deadline)
            if status in REDIRECT_STATUSES and "location" in response_headers:
                hops += 1
                if hops > self.settings.max_redirects:
                    raise FetchError(
                        f"{url}: more than {self.settings.max_redirects} redirects", status=status
                    )
                all_permanent = all_permanent and status in PERMANENT_REDIRECTS
                current = urljoin(current, response_headers["location"])
                continue
            result = FetchResult(
                url=current,
                status=status,
                body=body,
                headers=response_headers,
                permanent_url=current if hops and all_permanent else None,
            )
            return self._check_status(url, result)

    def _get_once(
        self, url: str, headers: dict[str, str], deadline: float
    ) -> tuple[int, httpx.Headers, bytes]:
        limit = self.settings.max_body_bytes
        try:
            with self.client.stream("GET", url, headers=headers) as response:
                if response.status_code in REDIRECT_STATUSES or response.status_code == 304:
                    return response.status_code, response.headers, b""
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(
                            f"{url}: response larger than {limit // (1024 * 1024)} MiB, abandoned",
                            status=response.status_code,
                        )
                    if time.monotonic() > deadline:
                        raise FetchError(
                            f"{url}: took longer than {self.settings.timeout:.0f} s, abandoned"
                        )
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks)
        except httpx.TimeoutException:
            raise FetchError(
                f"{url}: no answer within {float(self.settings.timeout):.0f} s"
            ) from None
        except httpx.TooManyRedirects:  # pragma: no cover - redirects are followed by hand
            raise FetchError(f"{url}: too many redirects") from None
        except httpx.DecodingError as exc:
            raise FetchError(f"{url}: the response could not be decoded ({exc})") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {_describe_transport_error(exc)}") from None

    @staticmethod
    def _check_status(url: str, result: FetchResult) -> FetchResult:
        status = result.status
        if status == 304 or 200 <= status < 300:
            return result
        retry_after = parse_retry_after(result.headers.get("retry-after"))
        if status == 410:
            raise FetchError(
                f"{url}: the server says it is gone for good (410)", status=410, gone=True
            )
        if status in (429, 503):
            wait = f", asked to wait {retry_after:.0f} s" if retry_after is not None else ""
            reason = "too many requests" if status == 429 else "service unavailable"
            raise FetchError(
                f"{url}: {reason} ({status}){wait}", status=status, retry_after=retry_after
            )
        if status == 404:
            raise FetchError(f"{url}: not found (404)", status=404)
        if status in (401, 403):
            raise FetchError(f"{url}: access refused ({status})", status=status)
        raise FetchError(f"{url}: the server answered HTTP {status}", status=status)


def _describe_transport_error(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "name or service not known" in lowered or "temporary failure in name resolution" in lowered:
        return "cannot resolve the host name (no network or DNS?)"
    if "connection refused" in lowered:
        return "connection refused"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({text})"
    return text
