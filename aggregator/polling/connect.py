"""The socket level of fetching: one DNS answer, checked, then connected to; a hard deadline.

httpx resolves a host name when it connects. Checking the address beforehand and letting the
connection resolve again leaves a gap a rebinding DNS server can use (public answer for the
check, 127.0.0.1 for the connection). Here the network backend of the connection pool does
both with the same answer: it resolves once, refuses the whole answer if any address is not
public, and connects to exactly the addresses it checked. TLS still uses the host name
(server_hostname), so SNI and certificate checks are unchanged; the Host header comes from
the URL as before.

Every read and write on a connection is bounded by the deadline of the request that uses it
(a context variable set by ``Fetcher.get``), so a server that sends its headers and then
trickles one byte a second cannot keep a request past its total time.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import typing
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar, Token

import httpcore
import httpx

from aggregator.errors import BlockedURLError, FetchError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_deadline: ContextVar[float | None] = ContextVar("aggregator_fetch_deadline", default=None)
# Threads are started on first use only; a lookup left behind by its deadline ends on its own.
_lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="aggregator-dns")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host, in its order, without duplicates.

    The lookup runs in a helper thread so that it too stops at the request's deadline:
    getaddrinfo itself cannot be interrupted, and an unreachable DNS server holds it for
    many seconds.
    """
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass  # a name, not an address
    lookup = _lookups.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=remaining_time())
    except TimeoutError:
        raise FetchError(f"the host name {host} could not be resolved in time") from None
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        # UnicodeError: a label too long or empty; ValueError: a NUL in the name.
        raise FetchError(f"the host name {host!r} could not be resolved ({exc})") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def non_public_reason(address: str) -> str | None:
    """Why an address must not be reached from untrusted URLs, or None when it is public."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT address"
    if ip.is_private or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "a private address"
    return None


def check_addresses(host: str, addresses: list[str]) -> None:
    """Raise BlockedURLError unless every address of the answer is public."""
    for address in addresses:
        reason = non_public_reason(address)
        if reason:
            raise BlockedURLError(
                f"refused to connect to {host}: it resolves to {address}, {reason}"
                " (set allow_private_networks = true on the feed in config.toml to allow it)"
            )


def remaining_time() -> float | None:
    """Seconds left before the deadline of the request running in this thread, if any."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def start_deadline(seconds: float) -> Token[float | None]:
    """Bound every socket operation of this thread to ``seconds`` from now, in total."""
    return _deadline.set(time.monotonic() + seconds)


def end_deadline(token: Token[float | None]) -> None:
    _deadline.reset(token)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    left = remaining_time()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the total time allowed for the request is spent")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write stops at the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Resolve once, check the answer (unless private networks are allowed), connect to it."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.resolver(host, port)
        if not addresses:
            raise FetchError(f"the host name {host} has no address")
        if not self.allow_private:
            check_addresses(host, addresses)
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = self._backend.connect_tcp(
                    address,
                    port,
                    _bounded(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return DeadlineStream(stream)
        assert last_error is not None
        raise last_error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - feeds are never fetched over a socket file
        raise httpcore.ConnectError("unix sockets are not used for fetching")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - retries are disabled
        time.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport with its pool connecting through a ``PinnedBackend``.

    Proxies from the environment are ignored on purpose: a proxy would be the address
    checked, not the site.
    """

    def __init__(
        self, backend: PinnedBackend, limits: httpx.Limits, ssl_context: ssl.SSLContext
    ) -> None:
        # httpx's own __init__ would build a pool (and an SSL context) only to be replaced.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class HostClients:
    """One small client (connection pool) per host, and per guard (private allowed or not).

    A pool per host holds at most the per-host limit of connections. One pool for every
    host would hold dozens, and httpcore's bookkeeping on each request grows with the
    square of a pool's connections (it was most of the time of a poll of unchanged feeds).
    The pools of hosts not in use are closed beyond the ``keep`` most recent ones, so idle
    sockets to hundreds of sites do not pile up.
    """

    def __init__(self, build: Callable[[bool], httpx.Client], keep: int = 64) -> None:
        # build(allow_private) -> a client whose connections are guarded unless allowed.
        self._build = build
        self._keep = keep
        self._clients: OrderedDict[tuple[bool, str], httpx.Client] = OrderedDict()
        self._busy: Counter[tuple[bool, str]] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def client(self, host: str, *, allow_private: bool) -> Iterator[httpx.Client]:
        key = (allow_private, host)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._build(allow_private)
            self._clients.move_to_end(key)
            self._busy[key] += 1
        try:
            yield client
        finally:
            with self._lock:
                self._busy[key] -= 1
                if not self._busy[key]:
                    del self._busy[key]
                surplus = len(self._clients) - self._keep
                idle = [k for k in self._clients if k not in self._busy][: max(surplus, 0)]
                closing = [self._clients.pop(k) for k in idle]
            for stale in closing:
                stale.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            client.close()
