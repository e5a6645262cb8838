"""Polling feeds end to end on one SQLite database, with the clock in the test's hands.

Real HTTP on 127.0.0.1 (UpstreamServer, HostileServer); scheduling read back from the
database as the daemon would.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import hostile
import pytest
from pollers import START, Poller, make, one_feed
from servers import UpstreamServer

from aggregator.models import DraftStatus, EntryState, FeedStatus
from aggregator.polling import decide, refresh
from aggregator.polling.parse import ParsedFeed
from aggregator.store import DraftContent, FeedWork

__all__ = ["make"]  # the fixture, used by name
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
INTERVAL = 30 * MINUTE
DATA = Path(__file__).parents[1] / "data"


# ------------------------------------------------------------------ conditional polling


def test_first_poll_stores_entries_then_304_changes_nothing(
    upstream: UpstreamServer, make: Any
) -> None:
    url = upstream.add("/rss/", hostile.rss(3), etag="v1")
    poller = one_feed(make, url)
    assert poller.poll().entries["new"] == 3
    assert [e.title for e in poller.entries()] == ["item 1", "item 2", "item 3"]

    report = poller.poll_when_due()

    assert report.feeds["unchanged"] == 1
    assert upstream.requests[1].headers["if-none-match"] == '"v1"'
    assert len(poller.entries()) == 3


def test_same_body_without_validators_skips_parsing(upstream: UpstreamServer, make: Any) -> None:
    url = upstream.add("/rss/", hostile.rss(3))
    poller = one_feed(make, url)
    poller.poll()
    parsed = spy_on_parse(poller)

    report = poller.poll_when_due()

    assert report.feeds["unchanged"] == 1 and parsed == []
    upstream.add("/rss/", hostile.rss(4))
    assert poller.poll_when_due().entries["new"] == 1 and len(parsed) == 1


def spy_on_parse(poller: Poller) -> list[ParsedFeed]:
    """What each call of the poller's parser returns from now on, in order."""
    returned: list[ParsedFeed] = []
    real_parse = poller.parse

    def parse(*args: Any, **kwargs: Any) -> ParsedFeed:
        returned.append(real_parse(*args, **kwargs))
        return returned[-1]

    poller.parse = parse
    return returned


def test_a_changed_feed_parses_only_its_new_items(upstream: UpstreamServer, make: Any) -> None:
    poller = one_feed(make, upstream.add("/rss/", hostile.rss(20), etag="v1"))
    poller.poll()
    parsed = spy_on_parse(poller)
    upstream.add("/rss/", hostile.rss(21), etag="v2")  # one more item, 20 as they were

    assert poller.poll_when_due().entries == {"new": 1, "updated": 0}

    assert [e.title for e in parsed[0].entries] == ["item 21"]
    assert len(poller.entries()) == 21
    upstream.add("/rss/", hostile.rss(21).replace(b"Text of item 3.", b"New text."), etag="v3")
    assert poller.poll_when_due().entries == {"new": 0, "updated": 1}
    assert [e.title for e in parsed[1].entries] == ["item 3"]


# ------------------------------------------------------------------ scheduling


def test_next_check_keeps_the_feed_phase_across_late_polls(
    upstream: UpstreamServer, make: Any
) -> None:
    poller = one_feed(make, upstream.add("/rss/", hostile.rss(1), etag="v1"))
    poller.poll(force=True)
    first_due = poller.feed().next_check_at
    assert first_due == START + INTERVAL + decide.jitter(poller.feed().config_url, INTERVAL)
    for lateness in (40, 5, 59, 12):  # the daemon's tick runs polls a little late
        due = poller.feed().next_check_at
        assert due is not None
        poller.clock.now = due + timedelta(seconds=lateness)
        poller.poll()
    assert poller.feed().next_check_at == first_due + 4 * INTERVAL


def test_feeds_added_together_are_spread_by_their_jitter(
    upstream: UpstreamServer, make: Any
) -> None:
    feeds = [
        {"url": upstream.add(f"/{n}/rss", hostile.rss(1)), "name": f"feed {n}"} for n in range(5)
    ]
    poller = make(feeds)
    poller.poll()
    checks = {poller.feed(f"feed {n}").next_check_at for n in range(5)}
    assert len(checks) == 5
    assert all(START + INTERVAL <= c < START + INTERVAL * 1.1 for c in checks if c)


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"Cache-Control": "max-age=7200"}, 2 * HOUR),
        ({"Expires": format_datetime(START + 3 * HOUR, usegmt=True)}, 3 * HOUR),
        ({"Cache-Control": "max-age=2592000"}, 24 * HOUR),
    ],
)
def test_cache_headers_push_the_next_check(
    upstream: UpstreamServer, make: Any, headers: dict[str, str], delay: timedelta
) -> None:
    poller = one_feed(make, upstream.add("/rss/", hostile.rss(1), headers=headers))
    poller.poll()
    expected = min(START + delay + poller_jitter(poller), START + 24 * HOUR)  # never past a day
    assert poller.feed().next_check_at == expected


def test_rss_ttl_is_honoured_also_when_the_body_is_unchanged(
    upstream: UpstreamServer, make: Any
) -> None:
    feed = (DATA / "torment-nexus-like.rss").read_bytes()  # <ttl>60</ttl>
    poller = one_feed(make, upstream.add("/rss/", feed))
    poller.poll()
    assert poller.feed().ttl_seconds == 3600
    assert poller.feed().next_check_at == START + HOUR + poller_jitter(poller)

    poller.poll_when_due()  # same bytes: parsing is skipped, the stored ttl still counts

    assert poller.feed().next_check_at == START + 2 * HOUR + poller_jitter(poller)


def poller_jitter(poller: Poller) -> timedelta:
    return decide.jitter(poller.feed().config_url, INTERVAL)


def test_errors_back_off_exponentially_and_the_feed_is_never_abandoned(
    upstream: UpstreamServer, make: Any
) -> None:
    url = upstream.add("/rss/", b"oops", status=500)
    poller = one_feed(make, url)
    delays = []
    for _ in range(10):
        before = poller.clock.now
        poller.poll_when_due() if poller.feed().last_checked_at else poller.poll()
        feed = poller.feed()
        assert feed.status == FeedStatus.ERROR
        assert feed.last_error == "the server failed (500 Internal Server Error)"
        assert feed.next_check_at is not None
        delays.append(feed.next_check_at - (poller.clock.now or before))
    assert delays == [INTERVAL * 2**n for n in range(6)] + [24 * HOUR] * 4
    assert poller.feed().error_count == 10

    upstream.add("/rss/", hostile.rss(2))
    poller.poll_when_due()

    feed = poller.feed()
    assert (feed.status, feed.error_count, feed.last_error) == (FeedStatus.OK, 0, None)
    assert len(poller.entries()) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(upstream: UpstreamServer, make: Any, status: int) -> None:
    url = upstream.add("/rss/", b"", status=status, headers={"Retry-After": "7200"})
    poller = one_feed(make, url)
    poller.poll()
    feed = poller.feed()
    assert feed.next_check_at == START + 2 * HOUR
    assert (feed.last_error or "").endswith("; it asked us to wait 2 hr")

    poller.clock.advance(HOUR)  # not yet: no request goes out
    poller.poll()
    assert upstream.hits("/rss/") == 1


def test_gone_pauses_the_feed_and_says_so(upstream: UpstreamServer, make: Any) -> None:
    poller = one_feed(make, upstream.add("/rss/", b"", status=410))
    poller.poll()
    feed = poller.feed()
    assert feed.status == FeedStatus.GONE
    assert feed.next_check_at == poller.clock.now + timedelta(hours=24)
    assert feed.last_error is not None
    assert feed.last_error.startswith("the feed is gone: the server answered 410 Gone")
    assert "polling is paused, with one check a day" in feed.last_error

    poller.clock.advance(23 * HOUR)
    poller.poll()
    poller.poll(force=True)  # `aggregator poll` alone does not wake it either
    assert upstream.hits("/rss/") == 1
    poller.clock.advance(1 * HOUR)
    poller.poll()  # a day later: looked at once, still gone, paused another day
    assert upstream.hits("/rss/") == 2
    assert poller.feed().status == FeedStatus.GONE

    upstream.add("/rss/", hostile.rss(1))
    poller.poll(force=True, only=("feed",))  # asked for by name: tried again
    assert poller.feed().status == FeedStatus.OK


def test_permanent_redirect_updates_the_stored_url(upstream: UpstreamServer, make: Any) -> None:
    old = upstream.add("/old-rss", b"", status=301, headers={"Location": "/rss/"})
    new = upstream.add("/rss/", hostile.rss(2))
    poller = one_feed(make, old)
    poller.poll()
    assert poller.feed().url == new and poller.feed().config_url == old

    poller.poll_when_due()

    assert upstream.hits("/old-rss") == 1 and upstream.hits("/rss/") == 2


def test_temporary_redirect_keeps_the_stored_url(upstream: UpstreamServer, make: Any) -> None:
    old = upstream.add("/old-rss", b"", status=302, headers={"Location": "/rss/"})
    upstream.add("/rss/", hostile.rss(2))
    poller = one_feed(make, old)
    poller.poll()
    assert poller.feed().url == old


# ------------------------------------------------------------------ entries


def item_feed(description: str, pub_date: str = "Wed, 12 Feb 2025 14:00:00 GMT") -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<lastBuildDate>{pub_date}</lastBuildDate>"
        "<item><title>Only item</title><guid>only-1</guid><link>https://example.org/1</link>"
        f"<pubDate>{pub_date}</pubDate><description>{description}</description></item>"
        "</channel></rss>"
    ).encode()


def test_content_change_is_an_update_and_a_new_timestamp_is_not(
    upstream: UpstreamServer, make: Any
) -> None:
    poller = one_feed(make, upstream.add("/rss/", item_feed("First text.")))
    poller.poll()
    upstream.add("/rss/", item_feed("First text.", pub_date="Thu, 13 Feb 2025 09:00:00 GMT"))
    assert poller.poll_when_due().entries["updated"] == 0

    upstream.add("/rss/", item_feed("Second text."))
    report = poller.poll_when_due()

    assert report.entries == {"new": 0, "updated": 1}
    (entry,) = poller.entries()
    assert entry.summary_html == "Second text." and entry.update_count == 1


def test_an_entry_rewritten_on_every_fetch_is_updated_at_most_three_times_a_day(
    upstream: UpstreamServer, make: Any
) -> None:
    poller = one_feed(make, upstream.add("/rss/", item_feed("version 0")))
    poller.poll()
    updates = []
    for n in range(1, 9):  # every 30 min, 4 hours long
        upstream.add("/rss/", item_feed(f"version {n}"))
        updates.append(poller.poll_when_due().entries["updated"])
    assert updates == [1, 1, 1, 0, 0, 0, 0, 0]
    assert poller.entries()[0].summary_html == "version 3"

    poller.clock.advance(24 * HOUR)  # a new day: the latest version is taken
    poller.poll()
    assert poller.entries()[0].summary_html == "version 8"


def test_rejected_entry_stays_a_tombstone(upstream: UpstreamServer, make: Any) -> None:
    poller = one_feed(make, upstream.add("/rss/", item_feed("Original.")))
    poller.poll()
    (entry,) = poller.entries()
    draft_id = poller.store.save_draft(
        entry.id,
        DraftContent(
            title="Original.", body_html="<p>Original.</p>", source_language="en",
            target_language="fr", engine="libre", characters=9, requests=1,
        ),
        now=START,
    )  # fmt: skip
    poller.store.reject(draft_id, actor="editor", now=START)

    upstream.add("/rss/", item_feed("Edited after the rejection."))
    poller.poll_when_due()
    upstream.add("/rss/", hostile.rss(1))  # the entry leaves the feed...
    poller.poll_when_due()
    upstream.add("/rss/", item_feed("Edited after the rejection."))  # ...and comes back
    poller.poll_when_due()

    entries = [e for e in poller.entries() if e.key.endswith("/only-1")]
    assert len(entries) == 1 and entries[0].state == EntryState.DRAFTED
    assert poller.store.get_draft(draft_id).status == DraftStatus.REJECTED


# ------------------------------------------------------------------ broken feeds


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "application/rss+xml", "not a feed: the server sent an empty body"),
        (
            b"<!doctype html><html><head><title>Home</title></head><body>hi</body></html>",
            "text/html",
            "not a feed: the server sent an HTML page, and it links to no feed",
        ),
        (b"just some words", "text/plain", "not a feed: the server sent text/plain, not XML"),
        (
            b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'></svg>",
            "image/svg+xml",
            "not a feed: the document is neither RSS nor Atom",
        ),
        (
            b"<?xml version='1.0'?><rss><channel><<<",
            "application/rss+xml",
            "not a feed: the XML is broken beyond repair (not well-formed (invalid token)"
            " at line 1)",
        ),
    ],
)
def test_not_a_feed_is_a_clear_error_and_a_later_check(
    upstream: UpstreamServer, make: Any, body: bytes, content_type: str, message: str
) -> None:
    poller = one_feed(make, upstream.add("/rss/", body, content_type=content_type))
    poller.poll()
    feed = poller.feed()
    assert (feed.status, feed.last_error) == (FeedStatus.ERROR, message)
    assert feed.next_check_at == START + INTERVAL


def test_truncated_feed_keeps_its_complete_entries(upstream: UpstreamServer, make: Any) -> None:
    full = (DATA / "torment-nexus-like.rss").read_bytes()
    poller = one_feed(make, upstream.add("/rss/", hostile.truncated(full)))
    poller.poll()
    feed = poller.feed()
    assert feed.status == FeedStatus.OK
    assert "cut short or malformed" in (feed.last_error or "")
    assert [e.title for e in poller.entries()] == [
        "Does Elon Musk want to buy OpenAI? Yes and no",
        "The courts and the executive order",
    ]

    upstream.add("/rss/", full)  # the server recovers: the third entry arrives whole
    poller.poll_when_due()
    assert len(poller.entries()) == 3 and poller.feed().last_error is None


def test_one_broken_feed_never_stops_the_others(upstream: UpstreamServer, make: Any) -> None:
    feeds = [
        {"url": upstream.add("/good/rss", hostile.rss(2)), "name": "good"},
        {"url": upstream.add("/bad/rss", b"", status=500), "name": "bad"},
        {"url": upstream.add("/html/rss", b"<html><body>x</body></html>"), "name": "html"},
    ]
    poller = make(feeds)
    report = poller.poll()
    assert report.feeds == {"updated": 1, "failed": 2}
    assert len(poller.entries("good")) == 2


def test_workers_take_hosts_in_turn() -> None:
    def work(n: int, host: str) -> FeedWork:
        return FeedWork(n, f"http://{host}/{n}", str(n), FeedStatus.OK, None, None, None, 60.0, 0)

    feeds = [work(1, "a"), work(2, "a"), work(3, "a"), work(4, "b"), work(5, "c"), work(6, "b")]
    ordered = refresh.interleave_hosts(feeds)
    assert [f.id for f in ordered] == [1, 4, 5, 2, 6, 3]
