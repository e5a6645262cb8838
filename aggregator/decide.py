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
            return timedelta(seconds=int(match.group(1)))
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            return timedelta(0)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(timedelta(0), when - now)
    return timedelta(0)


def next_check_after_success(
    now: datetime,
    *,
    feed_key: str,
    interval: timedelta,
    ttl: timedelta | None = None,
    cache_control: str | None = None,
    expires: str | None = None,
) -> datetime:
    """max(interval, <ttl>, Cache-Control max-age, Expires), capped at 24 h, plus jitter."""
    delay = max(interval, ttl or timedelta(0), cache_lifetime(cache_control, expires, now))
    delay = min(delay, MAX_DELAY)
    when: datetime = now + delay + jitter(feed_key, interval)
    return when


def next_check_after_error(
    now: datetime,
    *,
    interval: timedelta,
    error_count: int,
    retry_after: timedelta | None = None,
) -> datetime:
    """interval × 2^errors (error_count counts this failure), capped at 24 h; never gives up."""
    exponent = min(max(error_count - 1, 0), 32)
    delay = min(interval * (2**exponent), MAX_DELAY)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_DELAY))
    when: datetime = now + delay
    return when


def next_attempt_after_error(
    now: datetime, *, attempts: int, retry_after: timedelta | None = None
) -> datetime:
    """When to retry an entry whose stage failed (attempts counts this failure)."""
    exponent = min(max(attempts - 1, 0), 32)
    delay = min(ENTRY_RETRY_BASE * (2**exponent), MAX_DELAY)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_DELAY))
    when: datetime = now + delay
    return when
