"""The program's one clock. Code that needs "now" takes a clock argument defaulting to this
one, so that tests inject theirs instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current moment, timezone-aware, in UTC."""
    return datetime.now(UTC)
