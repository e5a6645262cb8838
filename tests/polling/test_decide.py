"""Scheduling decisions, with time given by the test."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from aggregator.polling import decide

NOW = datetime(2025, 2, 12, 15, 0, tzinfo=UTC)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
INTERVAL = 30 * MINUTE
FEED = "https://torment-nexus.mathewingram.com/rss/"


def after_success(**kwargs: object) -> timedelta:
    """The delay chosen for a feed on time for its slot (so no jitter is added)."""
    scheduled = kwargs.pop("scheduled_at", NOW)
    when = decide.next_check_after_success(
        NOW, feed_key=FEED, interval=kwargs.pop("interval", INTERVAL),  # type: ignore[arg-type]
        scheduled_at=scheduled, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    return when - NOW


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, INTERVAL),
        ({"ttl": 2 * HOUR}, 2 * HOUR),
        ({"ttl": 5 * MINUTE}, INTERVAL),  # a ttl never makes polling more frequent
        ({"cache_control": "public, max-age=7200"}, 2 * HOUR),
        ({"cache_control": 's-maxage=10, max-age="5400"'}, 90 * MINUTE),
        ({"cache_control": "max-age=60"}, INTERVAL),
        ({"cache_control": "no-cache, max-age=7200"}, INTERVAL),
        ({"expires": format_datetime(NOW + 3 * HOUR, usegmt=True)}, 3 * HOUR),
        ({"expires": "0"}, INTERVAL),  # invalid Expires: already expired
        ({"expires": format_datetime(NOW - HOUR, usegmt=True)}, INTERVAL),
        ({"cache_control": "max-age=604800"}, 24 * HOUR),  # capped at a day
        ({"ttl": 7 * 24 * HOUR}, 24 * HOUR),
        ({"interval": 48 * HOUR}, 24 * HOUR),
        ({"ttl": 3 * HOUR, "cache_control": "max-age=7200"}, 3 * HOUR),  # the largest wins
    ],
)
def test_next_check_is_the_largest_of_interval_ttl_and_cache_headers(
    kwargs: dict[str, object], expected: timedelta
) -> None:
    assert after_success(**kwargs) == expected


def test_jitter_is_fixed_per_feed_and_within_a_tenth_of_the_interval() -> None:
    offsets = [decide.jitter(f"https://example.org/{n}/rss", INTERVAL) for n in range(200)]
    assert all(timedelta(0) <= o < INTERVAL / 10 for o in offsets)
    assert len(set(offsets)) == 200  # feeds added together do not poll together
    assert decide.jitter(FEED, INTERVAL) == decide.jitter(FEED, INTERVAL)
    spread = max(offsets) - min(offsets)
    assert spread > INTERVAL / 10 * 0.9


def test_first_poll_gets_its_phase_from_the_jitter() -> None:
    when = decide.next_check_after_success(NOW, feed_key=FEED, interval=INTERVAL)
    assert when == NOW + INTERVAL + decide.jitter(FEED, INTERVAL)


def test_late_polls_do_not_drift() -> None:
    """A daemon ticking once a minute runs each poll up to a minute late; over a week of
    polls the schedule stays on the feed's own phase instead of sliding by the lateness."""
    rng = random.Random(7)
    first = decide.next_check_after_success(NOW, feed_key=FEED, interval=INTERVAL)
    due = first
    for _ in range(7 * 48):
        ran_at = due + timedelta(seconds=rng.uniform(0, 60))
        due = decide.next_check_after_success(
            ran_at, feed_key=FEED, interval=INTERVAL, scheduled_at=due
        )
    assert due == first + 7 * 48 * INTERVAL


def test_a_poll_long_overdue_takes_a_new_phase_from_now() -> None:
    overdue = NOW - 5 * HOUR
    when = decide.next_check_after_success(
        NOW, feed_key=FEED, interval=INTERVAL, scheduled_at=overdue
    )
    assert when == NOW + INTERVAL + decide.jitter(FEED, INTERVAL)


def test_a_forced_poll_before_the_schedule_counts_from_now() -> None:
    """Polled by hand ten minutes before its slot: the next check is an interval from now
    (with the feed's jitter), not an interval from the slot it skipped."""
    when = decide.next_check_after_success(
        NOW, feed_key=FEED, interval=INTERVAL, scheduled_at=NOW + 10 * MINUTE
    )
    assert when == NOW + INTERVAL + decide.jitter(FEED, INTERVAL)
    assert when < NOW + 10 * MINUTE + INTERVAL


def test_errors_back_off_exponentially_up_to_a_day_and_never_stop() -> None:
    delays = [
        decide.next_check_after_error(NOW, interval=INTERVAL, error_count=n) - NOW
        for n in range(1, 12)
    ]
    assert delays[:7] == [INTERVAL * 2**n for n in range(6)] + [24 * HOUR]
    assert delays[6:] == [24 * HOUR] * 5
    # A feed failing for a year is still checked once a day.
    assert decide.next_check_after_error(NOW, interval=INTERVAL, error_count=365) == NOW + 24 * HOUR


def test_retry_after_pushes_the_next_check_within_the_cap() -> None:
    pushed = decide.next_check_after_error(
        NOW, interval=INTERVAL, error_count=1, retry_after=5 * HOUR
    )
    assert pushed == NOW + 5 * HOUR
    short = decide.next_check_after_error(NOW, interval=INTERVAL, error_count=1, retry_after=MINUTE)
    assert short == NOW + INTERVAL  # asking for less never makes us poll sooner
    huge = decide.next_check_after_error(
        NOW, interval=INTERVAL, error_count=1, retry_after=30 * 24 * HOUR
    )
    assert huge == NOW + 24 * HOUR


def test_entry_retries_back_off_from_a_minute() -> None:
    delays = [decide.next_attempt_after_error(NOW, attempts=n) - NOW for n in (1, 2, 3, 30)]
    assert delays == [MINUTE, 2 * MINUTE, 4 * MINUTE, 24 * HOUR]
