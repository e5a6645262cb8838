"""A feed's health in words a person reads: status, last and next check, errors. Pure.

The words are English msgids; ``words`` (``i18n.Messages``) gives them in the editor's
language. Without it they stay English, as the JSON output's ``status_text`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.clock import utc_day
from aggregator.config import FeedSettings, Settings
from aggregator.i18n import ENGLISH, N_, Messages
from aggregator.store import FeedHealth, Store
from aggregator.store.stats import FeedSpend

_STATUS_WORDS = {
    "new": N_("not checked yet"),
    "ok": N_("ok"),
    "error": N_("failing"),
    "gone": N_("paused: the feed is gone"),
}


@dataclass(frozen=True)
class FeedSheet:
    """One feed as the desk and ``aggregator feeds list`` show it: health, settings (with
    ``[defaults]`` applied) and what its drafts cost today and this month."""

    health: FeedHealth
    settings: FeedSettings
    spend: dict[str, FeedSpend | None]  # by period: "today", "month"


def feed_sheets(settings: Settings, store: Store, now: datetime) -> list[FeedSheet]:
    """Every feed the store follows, with its settings and spend."""
    spent = {
        period: store.feed_spend(start, end) for period, (start, end) in spend_periods(now).items()
    }
    return [
        FeedSheet(
            feed,
            settings.feed(feed.config_url or feed.url),
            {period: by_slug.get(feed.slug) for period, by_slug in spent.items()},
        )
        for feed in store.feed_health()
    ]


def spend_periods(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """The periods a feed's spend is counted over, as budgets count: the UTC day and the
    UTC calendar month that hold ``now``."""
    day = utc_day(now)
    month = day[0].replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return {"today": day, "month": (month, next_month)}


def status_words(feed: FeedHealth, words: Messages = ENGLISH) -> str:
    if feed.status == "error":
        return words.ngettext(
            "failing (%(num)s error)", "failing (%(num)s errors in a row)", feed.error_count
        )
    if feed.status == "ok" and feed.last_error:
        return words.gettext("ok, with a warning")
    known = _STATUS_WORDS.get(feed.status)
    return words.gettext(known) if known else feed.status


def describe(feed: FeedHealth, now: datetime, words: Messages = ENGLISH) -> str:
    """One line: name, status, last and next check, entries, and the last error if any."""
    line = words.gettext(
        "%(name)s: %(status)s; checked %(ago)s, next check %(until)s; %(entries)s",
        name=feed.name,
        status=status_words(feed, words),
        ago=words.ago(feed.last_checked_at, now),
        until=words.until(feed.next_check_at, now),
        entries=words.ngettext("%(num)s entry", "%(num)s entries", feed.entries),
    )
    if feed.last_error:
        label = words.gettext("warning") if feed.status == "ok" else words.gettext("last error")
        line += f"\n    {label}: {feed.last_error}"
    return line
