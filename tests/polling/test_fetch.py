"""The fetcher against real local servers: validators, limits, redirects, statuses, SSRF."""

from __future__ import annotations

import dataclasses
import gzip
import threading
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import hostile
import pytest
from hostile import HostileServer
from servers import UpstreamServer

from aggregator import __version__
from aggregator.config import FetchSettings
from aggregator.errors import BlockedURLError, FetchError, InvalidURLError
from aggregator.polling.connect import non_public_reason, system_resolver
from aggregator.polling.fetch import PROJECT_URL, Fetcher, origin_of

LAST_MODIFIED = "Wed, 12 Feb 2025 15:20:41 GMT"
FEED = hostile.rss(3)


def settings(**changes: object) -> FetchSettings:
    return dataclasses.replace(FetchSettings(allow_private_networks=True), **changes)  # type: ignore[arg-type]


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(settings(timeout=2)) as client:
        yield client


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


# ------------------------------------------------------------------ politeness


def test_user_agent_names_the_project_and_its_url(
    upstream: UpstreamServer, fetcher: Fetcher
) -> None:
    fetcher.get(upstream.add("/rss/", FEED))
    agent = upstream.requests[0].headers["user-agent"]
    assert agent == f"aggregator/{__version__} (+{PROJECT_URL})"


def test_conditional_get_sends_validators_and_reports_not_modified(
    upstream: UpstreamServer, fetcher: Fetcher
) -> None:
    url = upstream.add("/rss/", FEED, etag="v1", last_modified=LAST_MODIFIED)
    first = fetcher.get(url)
    assert first.status == 200 and first.body == FEED
    assert first.etag == '"v1"' and first.last_modified == LAST_MODIFIED

    again = fetcher.get(url, etag=first.etag, last_modified=first.last_modified)

    assert again.not_modified and again.body == b""
    sent = upstream.requests[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == LAST_MODIFIED


def test_gzip_body_is_decoded(upstream: UpstreamServer, fetcher: Fetcher) -> None:
    result = fetcher.get(upstream.add("/rss/", FEED, gzip=True))
    assert result.body == FEED
    assert "gzip" in upstream.requests[0].headers["accept-encoding"]


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_body_is_decoded_in_both_of_its_forms(
    server: HostileServer, fetcher: Fetcher, wbits: int
) -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = compressor.compress(FEED) + compressor.flush()
    url = server.add("/rss", hostile.static(body, headers={"Content-Encoding": "deflate"}))
    assert fetcher.get(url).body == FEED


def test_concatenated_gzip_members_are_all_decoded(server: HostileServer, fetcher: Fetcher) -> None:
    body = gzip.compress(FEED[:100]) + gzip.compress(FEED[100:])
    url = server.add("/rss", hostile.static(body, headers={"Content-Encoding": "gzip"}))
    assert fetcher.get(url).body == FEED


def test_unknown_compression_is_a_clear_error(server: HostileServer, fetcher: Fetcher) -> None:
    url = server.add("/rss", hostile.static(b"xx", headers={"Content-Encoding": "br"}))
    with pytest.raises(FetchError, match=r"compression this program does not read \(br\)"):
        fetcher.get(url)


# ------------------------------------------------------------------ size and time limits


def test_gzip_bomb_is_refused_with_memory_bounded_by_the_cap(
    server: HostileServer, fetcher: Fetcher
) -> None:
    url = server.add("/bomb", hostile.gzip_bomb(decoded_mib=1024))
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match=r"larger than 15 MiB once decompressed"):
            fetcher.get(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 1 GiB once decoded; the fetch never held much more than the 15 MiB it allows.
    assert peak < 40 * hostile.MIB


def test_large_body_without_length_is_cut_while_streaming(
    server: HostileServer, fetcher: Fetcher
) -> None:
    url = server.add("/huge", hostile.big_body(40 * hostile.MIB, declare_length=False))
    with pytest.raises(FetchError, match=r"larger than 15 MiB; abandoned"):
        fetcher.get(url)


def test_announced_large_body_is_not_downloaded(server: HostileServer, fetcher: Fetcher) -> None:
    url = server.add("/huge", hostile.big_body(40 * hostile.MIB, declare_length=True))
    with pytest.raises(FetchError, match=r"announced 40 MiB, more than the 15 MiB allowed"):
        fetcher.get(url)


def test_cap_is_configurable(upstream: UpstreamServer) -> None:
    with (
        Fetcher(settings(max_body_bytes=1000)) as small,
        pytest.raises(FetchError, match=r"more than the 1000 bytes allowed"),
    ):
        small.get(upstream.add("/rss/", hostile.rss(50)))


def test_server_that_never_answers_is_left_after_the_deadline(
    server: HostileServer, fetcher: Fetcher
) -> None:
    url = server.add("/never", hostile.never_answers())
    with pytest.raises(FetchError, match=r"^the server did not answer within 2 s$"):
        fetcher.get(url)


def test_trickle_after_the_headers_is_cut_at_the_total_deadline(
    server: HostileServer, fetcher: Fetcher
) -> None:
    # One byte every 0.2 s keeps each read well inside any per-read timeout; only a total
    # deadline stops it. Without one the server would send for 60 s.
    url = server.add("/trickle", hostile.trickle(every=0.2, total=300))
    with pytest.raises(FetchError, match=r"too slow: the response took longer than 2 s"):
        fetcher.get(url)
    server.close()  # lets the handler notice, and record what it could send
    assert 0 < server.trickled_bytes["/trickle"] < 300


def test_default_total_deadline_is_twenty_seconds() -> None:
    assert FetchSettings().timeout == 20
    assert FetchSettings().max_redirects == 5
    assert FetchSettings().max_body_bytes == 15 * hostile.MIB


# ------------------------------------------------------------------ redirects


def test_five_redirects_are_followed(server: HostileServer, fetcher: Fetcher) -> None:
    for n in range(5):
        server.add(f"/r{n}", hostile.redirect(f"/r{n + 1}"))
    server.add("/r5", hostile.static(FEED))
    result = fetcher.get(server.url("/r0"))
    assert result.body == FEED and result.url == server.url("/r5")
    assert result.permanent_url is None  # 302s: the feed did not move for good


def test_a_sixth_redirect_is_refused(server: HostileServer, fetcher: Fetcher) -> None:
    for n in range(6):
        server.add(f"/r{n}", hostile.redirect(f"/r{n + 1}"))
    server.add("/r6", hostile.static(FEED))
    with pytest.raises(FetchError, match=r"too many redirects: more than 5"):
        fetcher.get(server.url("/r0"))
    assert server.hits["/r6"] == 0


def test_redirect_loop_is_named_a_loop(server: HostileServer, fetcher: Fetcher) -> None:
    server.add("/a", hostile.redirect("/b", 301))
    server.add("/b", hostile.redirect("/a", 301))
    with pytest.raises(FetchError, match=r"too many redirects: more than 5 in a loop"):
        fetcher.get(server.url("/a"))
    assert server.hits["/a"] + server.hits["/b"] == 6


def test_permanent_redirects_give_the_new_url(server: HostileServer, fetcher: Fetcher) -> None:
    server.add("/old", hostile.redirect("/moved", 301))
    server.add("/moved", hostile.redirect("/new", 308))
    server.add("/new", hostile.static(FEED))
    assert fetcher.get(server.url("/old")).permanent_url == server.url("/new")


def test_a_temporary_hop_means_the_feed_did_not_move(
    server: HostileServer, fetcher: Fetcher
) -> None:
    server.add("/old", hostile.redirect("/moved", 301))
    server.add("/moved", hostile.redirect("/new", 302))
    server.add("/new", hostile.static(FEED))
    assert fetcher.get(server.url("/old")).permanent_url is None


# ------------------------------------------------------------------ statuses


@pytest.mark.parametrize(
    ("status", "headers", "message", "retry_after"),
    [
        (429, {"Retry-After": "120"}, r"asked us to slow down \(429 Too Many Requests\)", 120),
        (503, {"Retry-After": "3600"}, r"unavailable for now \(503 Service Unavailable\)", 3600),
        (503, {}, r"unavailable for now \(503 Service Unavailable\)$", None),
        (500, {}, r"^the server failed \(500 Internal Server Error\)$", None),
        (404, {}, r"^nothing at this address \(404 Not Found\)", None),
        (403, {}, r"^access refused \(403 Forbidden\)", None),
    ],
)
def test_error_statuses_are_told_in_words(
    server: HostileServer,
    fetcher: Fetcher,
    status: int,
    headers: dict[str, str],
    message: str,
    retry_after: float | None,
) -> None:
    url = server.add("/feed", hostile.static(b"", status, headers))
    with pytest.raises(FetchError, match=message) as caught:
        fetcher.get(url)
    assert caught.value.status == status
    assert caught.value.retry_after == retry_after
    assert not caught.value.gone


def test_retry_after_as_an_http_date(server: HostileServer, fetcher: Fetcher) -> None:
    url = server.add(
        "/feed", hostile.static(b"", 429, {"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})
    )
    with pytest.raises(FetchError) as caught:
        fetcher.get(url)
    assert caught.value.retry_after is not None and caught.value.retry_after > 365 * 86400


def test_gone_is_flagged(server: HostileServer, fetcher: Fetcher) -> None:
    url = server.add("/feed", hostile.static(b"", 410))
    with pytest.raises(FetchError, match=r"the feed is gone: the server answered 410 Gone"):
        fetcher.get(url)


def test_refused_connection_is_told_in_words(fetcher: Fetcher) -> None:
    with HostileServer() as closed:
        url = closed.url("/feed")
    with pytest.raises(FetchError, match=r"^connection refused: nothing listens at this address"):
        fetcher.get(url)


# ------------------------------------------------------------------ concurrency


def _fetch_all(fetcher: Fetcher, urls: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        list(pool.map(fetcher.get, urls))


class Turnstile:
    """A server behaviour that holds every request until ``limit`` are held at once, then
    answers: the limit is reached however slowly a loaded machine starts the threads.

    A request counts as in flight from its arrival until just before its answer is
    written. (Counting until the handler returns, as ``hostile.slow`` does, saw one
    request too many now and then: the client may start its next request as soon as it
    has read an answer, before the handler that wrote it has finished.) Once the limit is
    reached, the held requests stay ``SETTLE`` seconds more, so that a request beyond the
    limit, had the fetcher let one through, is there to be counted.
    """

    SETTLE = 0.2  # seconds: room for an extra request to arrive; no assertion is timed
    DEADLINE = 15.0  # seconds: a limit never reached fails the test instead of hanging

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight: Counter[str] = Counter()  # by Host header
        self.peak: Counter[str] = Counter()
        self.peak_total = 0
        self._changed = threading.Condition()
        self._reached = threading.Event()

    def __call__(self, handler: hostile._HostileHandler) -> None:
        host = handler.headers.get("Host", "")
        with self._changed:
            self.in_flight[host] += 1
            self.peak[host] = max(self.peak[host], self.in_flight[host])
            self.peak_total = max(self.peak_total, sum(self.in_flight.values()))
            if self.peak_total >= self.limit:
                self._reached.set()
        if self._reached.wait(self.DEADLINE):
            handler.closing.wait(self.SETTLE)
        else:
            self._reached.set()  # the others need not wait out the deadline too
        with self._changed:
            self.in_flight[host] -= 1
        handler.send_body(200, FEED, {"Content-Type": "application/rss+xml"})


def test_per_host_limit_holds_parallel_requests_to_one_host(server: HostileServer) -> None:
    turnstile = Turnstile(limit=2)
    urls = [server.add(f"/f{n}", turnstile) for n in range(6)]
    with Fetcher(settings(concurrency=16, per_host_concurrency=2)) as limited:
        _fetch_all(limited, urls)
    assert turnstile.peak == {f"127.0.0.1:{server.port}": 2}
    assert sum(server.hits.values()) == 6


def test_global_limit_holds_requests_across_hosts(server: HostileServer) -> None:
    # "127.0.0.1" and "localhost" are two host names, hence two hosts, for the limits:
    # 2 per host would let 4 through at once; the global limit holds them to 3.
    turnstile = Turnstile(limit=3)
    paths = [server.add(f"/f{n}", turnstile) for n in range(4)]
    urls = paths + [p.replace("127.0.0.1", "localhost") for p in paths]
    with Fetcher(settings(concurrency=3, per_host_concurrency=2)) as limited:
        _fetch_all(limited, urls)
    assert turnstile.peak_total == 3
    # Three in flight over two hosts: one of them had two, none had more.
    assert max(turnstile.peak.values()) == 2
    assert sum(server.hits.values()) == 8


# ------------------------------------------------------------------ SSRF guard


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_named(address: str, reason: str) -> None:
    assert reason in (non_public_reason(address) or "")


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_pass(address: str) -> None:
    assert non_public_reason(address) is None


def test_untrusted_url_to_loopback_is_refused_before_any_request(
    server: HostileServer,
) -> None:
    url = server.add("/article", hostile.static(b"secret"))
    with (
        Fetcher(settings(allow_private_networks=False)) as guarded,
        pytest.raises(BlockedURLError, match=r"127\.0\.0\.1, a loopback address"),
    ):
        guarded.get(url)
    assert server.hits["/article"] == 0


def test_trusted_feed_url_on_a_private_host_is_fetched(server: HostileServer) -> None:
    url = server.add("/rss", hostile.static(FEED))
    with Fetcher(settings(allow_private_networks=False)) as guarded:
        assert guarded.get(url, trusted=True).body == FEED


def test_redirect_from_a_trusted_feed_to_another_private_host_is_refused(
    server: HostileServer,
) -> None:
    server.add("/internal", hostile.static(b"admin page"))
    url = server.add("/rss", hostile.redirect(f"http://localhost:{server.port}/internal"))
    with (
        Fetcher(settings(allow_private_networks=False)) as guarded,
        pytest.raises(BlockedURLError, match=r"redirected to http://localhost:\d+/internal"),
    ):
        guarded.get(url, trusted=True)
    assert server.hits["/internal"] == 0


def test_trust_is_the_configured_origin_not_the_host_name(server: HostileServer) -> None:
    """A loopback feed redirecting to another loopback port reaches another service."""
    with HostileServer() as internal:
        internal.add("/admin", hostile.static(b"admin page"))
        url = server.add("/rss", hostile.redirect(internal.url("/admin")))
        server.add("/same", hostile.redirect("/rss-here"))
        server.add("/rss-here", hostile.static(FEED))
        with Fetcher(settings(allow_private_networks=False)) as guarded:
            with pytest.raises(BlockedURLError, match=rf"redirected to {internal.url('/admin')}"):
                guarded.get(url, trusted=True)
            # A redirect within the configured origin stays trusted.
            assert guarded.get(server.url("/same"), trusted=True).body == FEED
            moved = guarded.get(
                server.url("/rss-here"), trusted_origin=origin_of(server.url("/elsewhere"))
            )
            assert moved.body == FEED
        assert internal.hits["/admin"] == 0


def test_origins_compare_scheme_host_and_port() -> None:
    assert origin_of("http://Example.COM/feed") == origin_of("http://example.com:80/other")
    assert origin_of("http://example.com/") != origin_of("http://example.com:8080/")
    assert origin_of("http://example.com/") != origin_of("https://example.com/")
    assert origin_of("http://[::1]:8080/") == "http://[::1]:8080"
    assert origin_of("http://0177.0.0.1/") is None
    assert origin_of("ftp://example.com/") is None


def test_private_networks_can_be_allowed_or_refused_per_request(server: HostileServer) -> None:
    url = server.add("/article", hostile.static(b"page"))
    with Fetcher(settings(allow_private_networks=False)) as guarded:
        assert guarded.get(url, allow_private=True).body == b"page"
    with (
        Fetcher(settings(allow_private_networks=True)) as lenient,
        pytest.raises(BlockedURLError, match="a loopback address"),
    ):
        lenient.get(url, allow_private=False)
    assert server.hits["/article"] == 1


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://0177.0.0.1/a", "'http://0177.0.0.1/a', which cannot be fetched: invalid IPv4"),
        ("http://127.000.000.001/", "invalid IPv4 address: '127.000.000.001'"),
        ("http://①②⑦.0.0.1/", "invalid IDNA hostname: '①②⑦.0.0.1'"),
        ("http://xn--/", "'http://xn--/', which cannot be fetched: its host name is not valid"),
        ("http://example.com:99999/", "port 99999 is out of range"),
        ("http://example.com:abc/", "invalid port: 'abc'"),
        ("http://[::1/", "'http://[::1/', which cannot be fetched"),
        ("http:///path", "the URL has no host name"),
        ("javascript:alert(1)", "only http and https URLs can be fetched: 'javascript:alert(1)'"),
    ],
)
def test_a_url_that_cannot_be_built_is_an_invalid_url_error(
    fetcher: Fetcher, url: str, words: str
) -> None:
    with pytest.raises(InvalidURLError) as caught:
        fetcher.get(url)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("http://0177.0.0.1/x", "redirected to 'http://0177.0.0.1/x', which cannot be fetched"),
        ("http://[::1/x", "redirected to 'http://[::1/x', which cannot be fetched"),
        ("http://xn--/x", "redirected to 'http://xn--/x', which cannot be fetched"),
        ("http://example.com:99999/x", "port 99999 is out of range"),
    ],
)
def test_a_redirect_to_a_url_that_cannot_be_built_names_it(
    server: HostileServer, fetcher: Fetcher, location: str, words: str
) -> None:
    url = server.add("/moved", hostile.redirect(location))
    with pytest.raises(InvalidURLError) as caught:
        fetcher.get(url)
    assert words in str(caught.value)


def test_a_mixed_dns_answer_is_refused_whole(server: HostileServer) -> None:
    url = server.add("/article", hostile.static(b"secret")).replace("127.0.0.1", "mixed.test")

    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    with (
        Fetcher(settings(allow_private_networks=False), resolver=resolver) as guarded,
        pytest.raises(BlockedURLError, match=r"mixed\.test: it resolves to 127\.0\.0\.1"),
    ):
        guarded.get(url)
    assert server.hits["/article"] == 0


def test_connection_goes_to_the_address_that_was_checked(server: HostileServer) -> None:
    """DNS rebinding: a name that answers once with one address, then with another.

    The connection must use the first answer, the one checked, never a second lookup.
    The server only listens on 127.0.0.1, so a second lookup (127.0.0.2) would fail.
    """
    url = server.add("/rss", hostile.static(FEED)).replace("127.0.0.1", "rebind.test")
    answers = iter([["127.0.0.1"]])
    lookups: list[str] = []
    lock = threading.Lock()

    def rebinding_resolver(host: str, port: int) -> list[str]:
        with lock:
            lookups.append(host)
            return next(answers, ["127.0.0.2"])

    with Fetcher(settings(), resolver=rebinding_resolver) as pinned:
        assert pinned.get(url).body == FEED
    assert lookups == ["rebind.test"]
    assert f"rebind.test:{server.port}" in server.max_in_flight  # the Host header kept its name


def test_system_resolver_answers_addresses_at_once_and_names_by_lookup() -> None:
    assert system_resolver("127.0.0.1", 80) == ["127.0.0.1"]
    assert system_resolver("::1", 80) == ["::1"]
    assert set(system_resolver("localhost", 80)) <= {"127.0.0.1", "::1"}  # from /etc/hosts
