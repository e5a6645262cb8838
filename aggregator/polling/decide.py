"""Pure scheduling decisions: when to check a feed next, when to retry an entry.

No I/O and no clock: the caller passes ``now``, so tests decide time.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from datetime import UTC, datetime, timedelta

MAX_DELAY = timedelta(hours=24)
ENTRY_RETRY_BASE = timedelta(minutes=1)
JITTER_FRACTION = 0.1
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.I)


def jitter(feed_key: str, interval: timedelta) -> timedelta:
    """A fixed offset per feed (up to 10 % of its interval): spreads polls, never drifts."""
    fraction = int.from_bytes(hashlib.sha256(feed_key.encode()).digest()[:4], "big") / 2**32
    return timedelta(seconds=interval.total_seconds() * JITTER_FRACTION * fraction)


def cache_lifetime(cache_control: str | None, expires: str | None, now: datetime) -> timedelta:
    """How long the server says the response stays fresh (0 when it does not say)."""
    if cache_control:
        if "no-cache" in cache_control.lower() or "no-store" in cache_control.lower():
            return timedelta(0)
        match = _MAX_AGE.search(cache_control)
        if match:
            return timedelta(seconds=min(int(match.group(1)), int(MAX_DELAY.total_seconds())))
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return timedelta(0)  # RFC 9111: an invalid Expires means already expired
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return min(max(timedelta(0), when - now), MAX_DELAY)
    return timedelta(0)


def poll_delay(
    *,
    interval: timedelta,
    ttl: timedelta | None = None,
    cache_control: str | None = None,
    expires: str | None = None,
    now: datetime,
) -> timedelta:
    """max(feed interval, RSS <ttl>, Cache-Control max-age, Expires), capped at 24 h."""
    delay = max(interval, ttl or timedelta(0), cache_lifetime(cache_control, expires, now))
    return min(delay, MAX_DELAY)


def next_check_after_success(
    now: datetime,
    *,
    feed_key: str,
    interval: timedelta,
    ttl: timedelta | None = None,
    cache_control: str | None = None,
    expires: str | None = None,
    scheduled_at: datetime | None = None,
) -> datetime:
    """When to check a feed that just answered.

    A feed keeps its own phase: a poll that ran late (the scheduler ticks once a minute, a
    queue was long) counts from the time it was due, so the lateness never accumulates. A
    feed with no phase yet (first poll, a poll forced by hand, a poll long overdue) gets one
    from now plus its fixed jitter, which spreads feeds added together across 10 % of their
    interval once and for all.
    """
    delay = poll_delay(
        interval=interval, ttl=ttl, cache_control=cache_control, expires=expires, now=now
    )
    on_time = scheduled_at is not None and scheduled_at <= now < scheduled_at + delay
    if on_time and scheduled_at is not None:
        when: datetime = scheduled_at + delay
    else:
        when = now + delay + jitter(feed_key, interval)
    return min(when, now + MAX_DELAY)


def next_check_after_error(
    now: datetime,
    *,
    interval: timedelta,
    error_count: int,
    retry_after: timedelta | None = None,
) -> datetime:
    """interval × 2^(errors-1), capped at 24 h, or later if the server asked; never gives up.

    ``error_count`` counts this failure, so the first failure waits one interval.
    """
    return now + backoff(interval, error_count, retry_after)


def next_attempt_after_error(
    now: datetime, *, attempts: int, retry_after: timedelta | None = None
) -> datetime:
    """When to retry an entry whose stage failed (attempts counts this failure)."""
    return now + backoff(ENTRY_RETRY_BASE, attempts, retry_after)


def backoff(base: timedelta, failures: int, retry_after: timedelta | None) -> timedelta:
    """base × 2^(failures-1), capped at 24 h, or longer if the server asked (capped too)."""
    exponent = min(max(failures - 1, 0), 32)
    delay: timedelta = min(base * (2**exponent), MAX_DELAY)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_DELAY))
    return delay
