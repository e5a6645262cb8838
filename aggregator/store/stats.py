"""What the whole installation is doing, read from the database in one short transaction.

Every process (web, worker, the ``status`` command) reads the same rows, so /metrics served
by any of them tells the shared truth, whichever process did the work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from aggregator.clock import utc_day
from aggregator.models import Draft, EngineUsage, Entry, EntryState, Feed, FeedStatus
from aggregator.store.base import StoreBase
from aggregator.store.memory import NO_USE, Usage

# Stages of the entry queue, by the state an entry waits in.
QUEUES = {"text": EntryState.NEW, "translation": EntryState.EXTRACTED}


@dataclass(frozen=True)
class FeedCounters:
    slug: str
    status: str
    polls: int
    poll_errors: int
    consecutive_errors: int


@dataclass(frozen=True)
class Spend:
    """What an LLM engine was sent and answered with on one day, and what it cost."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class FeedSpend(Spend):
    """What the drafts of one feed translated in a period cost: characters sent to machine
    translation, tokens and money to an LLM engine."""

    feed: str  # its name, as configured
    characters: int = 0


# A feed none of whose drafts was translated in a period.
NOTHING_SPENT = FeedSpend(0, 0, 0, 0.0, "")


@dataclass(frozen=True)
class Overview:
    feeds: tuple[FeedCounters, ...]
    entries: dict[str, int]  # by state
    failing_entries: int  # waiting, and their last attempt failed
    drafts: dict[str, int]  # by status
    engines: dict[str, Usage]  # since the database was created
    engines_today: dict[str, Usage]
    # Work that is due and not taken: feeds to poll, entries per queue.
    due: dict[str, int]
    # Seconds the most overdue item of each queue has waited since it became due.
    overdue_seconds: dict[str, float]
    # Seconds since the oldest entry still waiting for each stage was stored.
    oldest_waiting_seconds: dict[str, float]
    claims_held: int  # entries taken by a process whose lease still runs
    claims_expired: int  # entries whose holder's lease ran out (a crashed process's)
    spend_today: dict[str, Spend] = field(default_factory=dict)  # LLM engines' tokens, cost
    # The same per feed (by slug, in name order), for its drafts translated today.
    feed_spend_today: dict[str, FeedSpend] = field(default_factory=dict)


class StatsStore(StoreBase):
    def overview(self, now: datetime) -> Overview:
        with self.session() as session:
            feeds = tuple(
                FeedCounters(
                    slug=slug,
                    status=status.value,
                    polls=polls or 0,
                    poll_errors=poll_errors or 0,
                    consecutive_errors=error_count or 0,
                )
                for slug, status, polls, poll_errors, error_count in session.execute(
                    select(Feed.slug, Feed.status, Feed.polls, Feed.poll_errors, Feed.error_count)
                    .where(Feed.status != FeedStatus.REMOVED)
                    .order_by(Feed.slug)
                )
            )
            entries = {
                state.value: n
                for state, n in session.execute(
                    select(Entry.state, func.count()).group_by(Entry.state)
                )
            }
            waiting = Entry.state.in_(list(QUEUES.values()))
            failing = session.scalar(
                select(func.count()).where(waiting, Entry.last_error.is_not(None))
            )
            drafts = {
                status.value: n
                for status, n in session.execute(
                    select(Draft.status, func.count()).group_by(Draft.status)
                )
            }
            drafted = _engine_totals(
                session.execute(
                    select(
                        Draft.engine, func.sum(Draft.requests), func.sum(Draft.characters)
                    ).group_by(Draft.engine)
                )
            )
            ledger = _engine_totals(
                session.execute(
                    select(
                        EngineUsage.engine,
                        func.sum(EngineUsage.requests),
                        func.sum(EngineUsage.characters),
                    ).group_by(EngineUsage.engine)
                )
            )
            today = _engine_totals(
                session.execute(
                    select(EngineUsage.engine, EngineUsage.requests, EngineUsage.characters).where(
                        EngineUsage.day == now.strftime("%Y-%m-%d")
                    )
                )
            )
            free = (Entry.locked_until.is_(None)) | (Entry.locked_until <= now)
            due_entry = (Entry.next_attempt_at.is_(None)) | (Entry.next_attempt_at <= now)
            due: dict[str, int] = {}
            overdue: dict[str, float] = {}
            oldest: dict[str, float] = {}
            for queue, state in QUEUES.items():
                count, since = session.execute(
                    select(func.count(), func.min(Entry.next_attempt_at)).where(
                        Entry.state == state, free, due_entry
                    )
                ).one()
                due[queue] = count
                overdue[queue] = _age(now, since)
                created = session.scalar(
                    select(func.min(Entry.created_at)).where(Entry.state == state)
                )
                oldest[queue] = _age(now, created)
            feed_free = (Feed.locked_until.is_(None)) | (Feed.locked_until <= now)
            count, since = session.execute(
                select(func.count(), func.min(Feed.next_check_at)).where(
                    Feed.status.not_in([FeedStatus.REMOVED, FeedStatus.GONE]),
                    feed_free,
                    (Feed.next_check_at.is_(None)) | (Feed.next_check_at <= now),
                )
            ).one()
            due["feeds"] = count
            overdue["feeds"] = _age(now, since)
            held = session.scalar(select(func.count()).where(waiting, Entry.locked_until > now))
            expired = session.scalar(
                select(func.count()).where(
                    waiting, Entry.claimed_by.is_not(None), Entry.locked_until <= now
                )
            )
        return Overview(
            feeds=feeds,
            entries=entries,
            failing_entries=failing or 0,
            drafts=drafts,
            # The ledger counts every call, failed ones included; drafts made before it
            # existed still tell what they cost.
            engines={
                name: Usage.larger(ledger.get(name, NO_USE), drafted.get(name, NO_USE))
                for name in sorted(set(ledger) | set(drafted))
            },
            engines_today=today,
            due=due,
            overdue_seconds=overdue,
            oldest_waiting_seconds=oldest,
            claims_held=held or 0,
            claims_expired=expired or 0,
            spend_today=self.spend_on(now.strftime("%Y-%m-%d")),
            feed_spend_today=self.feed_spend_on(now),
        )

    def spend_on(self, day: str) -> dict[str, Spend]:
        """The engines that used tokens on ``day`` (YYYY-MM-DD, UTC), by name."""
        with self.session() as session:
            rows = session.scalars(
                select(EngineUsage).where(
                    EngineUsage.day == day,
                    EngineUsage.prompt_tokens + EngineUsage.completion_tokens > 0,
                )
            )
            return {
                row.engine: Spend(row.requests, row.prompt_tokens, row.completion_tokens, row.cost)
                for row in rows
            }

    def feed_spend_on(self, moment: datetime) -> dict[str, FeedSpend]:
        """What the drafts translated with an LLM engine on ``moment``'s UTC day cost, per
        feed (by slug, in name order): requests, tokens sent and received, cost."""
        return self.feed_spend(*utc_day(moment), llm_only=True)

    def feed_spend(
        self, start: datetime, end: datetime, *, llm_only: bool = False
    ) -> dict[str, FeedSpend]:
        """What the drafts translated from ``start`` to ``end`` cost, per feed (by slug, in
        name order); ``llm_only``: only those an LLM engine translated."""
        query = (
            select(
                Feed.slug,
                Feed.name,
                func.sum(Draft.requests),
                func.sum(Draft.prompt_tokens),
                func.sum(Draft.completion_tokens),
                func.sum(Draft.cost),
                func.sum(Draft.characters),
            )
            .join(Entry, Draft.entry_id == Entry.id)
            .join(Feed, Entry.feed_id == Feed.id)
            .where(Draft.translated_at >= start, Draft.translated_at < end)
            .group_by(Feed.slug, Feed.name)
            .order_by(Feed.name, Feed.slug)
        )
        if llm_only:
            query = query.where(Draft.prompt_tokens.is_not(None))
        with self.session() as session:
            return {
                slug: FeedSpend(
                    int(requests or 0),
                    int(sent or 0),
                    int(received or 0),
                    cost or 0.0,
                    name,
                    int(characters or 0),
                )
                for slug, name, requests, sent, received, cost, characters in session.execute(query)
            }


def _engine_totals(rows: Iterable[Any]) -> dict[str, Usage]:
    totals: dict[str, Usage] = {}
    for engine, requests, characters in rows:
        previous = totals.get(engine, NO_USE)
        totals[engine] = Usage(
            characters=previous.characters + int(characters or 0),
            requests=previous.requests + int(requests or 0),
        )
    return totals


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
