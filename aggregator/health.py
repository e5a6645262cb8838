"""A feed's health in words a person reads: status, last and next check, errors. Pure."""

from __future__ import annotations

from datetime import datetime

from aggregator.store import FeedHealth

_STATUS_WORDS = {
    "new": "not checked yet",
    "ok": "ok",
    "error": "failing",
    "gone": "paused: the feed is gone",
}


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{span((now - moment).total_seconds())} ago"


def until(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "none (paused)"
    seconds = (moment - now).total_seconds()
    return "due now" if seconds <= 0 else f"in {span(seconds)}"


def span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def status_words(feed: FeedHealth) -> str:
    words = _STATUS_WORDS.get(feed.status, feed.status)
    if feed.status == "error":
        errors = "1 error" if feed.error_count == 1 else f"{feed.error_count} errors in a row"
        words = f"failing ({errors})"
    elif feed.status == "ok" and feed.last_error:
        words = "ok, with a warning"
    return words


def describe(feed: FeedHealth, now: datetime) -> str:
    """One line: name, status, last and next check, entries, and the last error if any."""
    line = (
        f"{feed.name}: {status_words(feed)}; checked {ago(feed.last_checked_at, now)}, "
        f"next check {until(feed.next_check_at, now)}; {feed.entries} entries"
    )
    if feed.last_error:
        line += f"\n    {'warning' if feed.status == 'ok' else 'last error'}: {feed.last_error}"
    return line
