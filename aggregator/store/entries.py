"""Entries: claims and the outcome of each processing stage."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from aggregator.models import Draft, DraftEvent, DraftStatus, Entry, EntryState, Feed
from aggregator.store.base import StoreBase
from aggregator.store.snapshots import (
    DraftContent,
    EntryWork,
)


class EntryStore(StoreBase):
    def claim_entries(
        self, now: datetime, lease: timedelta, limit: int, *, retry_failed: bool = False
    ) -> list[EntryWork]:
        """Take entries that wait for a stage, oldest first, under a lease."""
        with self.session() as session:
            query = (
                select(Entry)
                .join(Feed)
                .where(Entry.state.in_([EntryState.NEW, EntryState.EXTRACTED]))
                .where(or_(Entry.locked_until.is_(None), Entry.locked_until <= now))
            )
            if not retry_failed:
                query = query.where(
                    or_(Entry.next_attempt_at.is_(None), Entry.next_attempt_at <= now)
                )
            query = query.order_by(Entry.id).limit(limit).with_for_update(skip_locked=True)
            claimed = []
            for entry in session.scalars(query):
                entry.locked_until = now + lease
                claimed.append(
                    EntryWork(
                        id=entry.id,
                        feed_id=entry.feed_id,
                        feed_name=entry.feed.name,
                        url=entry.url,
                        title=entry.title,
                        author=entry.author,
                        published_at=entry.published_at,
                        summary_html=entry.summary_html,
                        content_html=entry.content_html,
                        full_html=entry.full_html,
                        language=entry.language,
                        state=entry.state,
                        attempts=entry.attempts,
                    )
                )
            return claimed

    def release_entries(self, ids: Iterable[int]) -> None:
        with self.session() as session:
            session.execute(update(Entry).where(Entry.id.in_(list(ids))).values(locked_until=None))

    def save_extracted(
        self, entry_id: int, *, full_html: str, source: str, language: str | None, now: datetime
    ) -> None:
        with self.session() as session:
            entry = session.get_one(Entry, entry_id)
            entry.full_html = full_html
            entry.full_text_source = source
            entry.language = language
            entry.state = EntryState.EXTRACTED
            entry.last_error = None
            entry.updated_at = now

    def mark_skipped(self, entry_id: int, reason: str, *, now: datetime) -> None:
        with self.session() as session:
            entry = session.get_one(Entry, entry_id)
            entry.state = EntryState.SKIPPED
            entry.skip_reason = reason
            entry.locked_until = None
            entry.last_error = None
            entry.updated_at = now

    def record_entry_error(
        self, entry_id: int, message: str, *, now: datetime, next_attempt_at: datetime
    ) -> None:
        with self.session() as session:
            entry = session.get_one(Entry, entry_id)
            entry.attempts += 1
            entry.last_error = message
            entry.next_attempt_at = next_attempt_at
            entry.locked_until = None
            entry.updated_at = now

    def save_draft(self, entry_id: int, content: DraftContent, *, now: datetime) -> int:
        """Create the entry's draft, or refresh a pending one; idempotent per entry."""
        with self.session() as session:
            entry = session.get_one(Entry, entry_id)
            draft = entry.draft
            fields = {
                "title": content.title,
                "body_html": content.body_html,
                "source_language": content.source_language,
                "target_language": content.target_language,
                "engine": content.engine,
                "characters": content.characters,
                "requests": content.requests,
                "warnings": list(content.warnings),
                "updated_at": now,
            }
            if draft is None:
                draft = Draft(
                    entry_id=entry_id, status=DraftStatus.PENDING, created_at=now, **fields
                )
                session.add(draft)
                session.flush()
                action = "drafted"
            else:
                for name, value in fields.items():
                    setattr(draft, name, value)
                draft.status = DraftStatus.PENDING
                draft.version += 1
                action = "redrafted"
            session.add(DraftEvent(draft_id=draft.id, action=action, actor="aggregator", at=now))
            entry.state = EntryState.DRAFTED
            entry.locked_until = None
            entry.last_error = None
            entry.updated_at = now
            return draft.id

    def backlog(self, now: datetime) -> dict[str, int]:
        """Entries waiting per state, and how many of those are failing."""
        with self.session() as session:
            rows = session.execute(select(Entry.state, func.count()).group_by(Entry.state))
            counts = {state.value: n for state, n in rows.all()}
            counts["failing"] = (
                session.scalar(
                    select(func.count())
                    .select_from(Entry)
                    .where(
                        Entry.last_error.is_not(None),
                        Entry.state.in_([EntryState.NEW, EntryState.EXTRACTED]),
                    )
                )
                or 0
            )
            return counts

    # ------------------------------------------------------------ drafts
