"""The program's one clock. Code that needs "now" takes a clock argument defaulting to this
one, so that tests inject theirs instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta


def utc_now() -> datetime:
    """The current moment, timezone-aware, in UTC."""
    return datetime.now(UTC)


def utc_day(moment: datetime) -> tuple[datetime, datetime]:
    """The UTC day that holds ``moment``: its first instant and the next day's."""
    start = datetime.combine(moment.astimezone(UTC).date(), time.min, UTC)
    return start, start + timedelta(days=1)
