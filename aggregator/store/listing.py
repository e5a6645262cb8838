"""Entries as the editor lists them: skipped (with the reason), failing (with the last error,
attempts and next try), pending; and the two things an editor does to one: retry it now, or
give it a text to translate (a licensed copy of a members-only post).

Both changes end any claim on the entry, so work in flight on it cannot land over the
editor's decision (its writes are fenced by the claim, see ``entries``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from aggregator import transitions
from aggregator.errors import NotFoundError
from aggregator.models import Draft, Entry, EntryState, Feed
from aggregator.store.base import StoreBase, row_or_missing
from aggregator.store.moves import apply_move
from aggregator.store.snapshots import EntryListing
from aggregator.transitions import EntryMove

LISTED_STATES = ("skipped", "failing", "pending", "drafted", "all")
_WAITING = (EntryState.NEW, EntryState.EXTRACTED)
_FAILING = and_(Entry.state.in_(_WAITING), Entry.last_error.is_not(None))
_CONDITIONS: dict[str, ColumnElement[bool]] = {
    "skipped": Entry.state == EntryState.SKIPPED,
    "failing": _FAILING,
    "pending": and_(Entry.state.in_(_WAITING), Entry.last_error.is_(None)),
    "drafted": Entry.state == EntryState.DRAFTED,
}


def listed_state(stage: EntryState, last_error: str | None) -> str:
    if stage in _WAITING:
        return "failing" if last_error else "pending"
    return stage.value


_LISTING = select(
    Entry.id,
    Feed.name,
    Feed.slug,
    Entry.title,
    Entry.url,
    Entry.state,
    Entry.skip_reason,
    Entry.attempts,
    Entry.last_error,
    Entry.next_attempt_at,
    Entry.published_at,
    Entry.updated_at,
    Entry.full_text_source,
    # Its first draft (one per target language of its feed): where the editor goes.
    select(func.min(Draft.id)).where(Draft.entry_id == Entry.id).scalar_subquery(),
).join(Feed, Entry.feed_id == Feed.id)


def _listing(row: Any) -> EntryListing:
    (entry_id, feed, slug, title, url, stage, reason, attempts, error, next_at, published,
     updated, source, draft_id) = row  # fmt: skip
    return EntryListing(
        id=entry_id,
        feed=feed,
        feed_slug=slug,
        title=title,
        url=url,
        state=listed_state(stage, error),
        stage=stage,
        reason=reason if stage == EntryState.SKIPPED else None,
        attempts=attempts,
        last_error=error,
        next_attempt_at=next_at if stage in _WAITING else None,
        published_at=published,
        updated_at=updated,
        full_text_source=source,
        draft_id=draft_id,
    )


class EntryListingStore(StoreBase):
    def list_entries(self, state: str = "all", *, feed: str | None = None) -> list[EntryListing]:
        """Entries in ``state`` (one of LISTED_STATES), newest first; ``feed`` is a feed's
        name, slug or URL."""
        if state not in LISTED_STATES:
            raise ValueError(f"unknown entry state {state!r}: one of {', '.join(LISTED_STATES)}")
        query = _LISTING.order_by(Entry.id.desc())
        if state != "all":
            query = query.where(_CONDITIONS[state])
        if feed:
            query = query.where(
                or_(Feed.name == feed, Feed.slug == feed, Feed.url == feed, Feed.config_url == feed)
            )
        with self.session() as session:
            return [_listing(row) for row in session.execute(query)]

    def get_entry_listing(self, entry_id: int) -> EntryListing:
        with self.session() as session:
            return self._listed(session, entry_id)

    @staticmethod
    def _listed(session: Session, entry_id: int) -> EntryListing:
        row = session.execute(_LISTING.where(Entry.id == entry_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no entry with id {entry_id}")
        return _listing(row)

    def retry_entry(self, entry_id: int, *, now: datetime) -> EntryListing:
        """Take a failing, pending or skipped entry again at the next pass
        (``transitions.retry``)."""
        with self.session() as session:
            entry = row_or_missing(session, Entry, entry_id, "entry")
            return self._moved(session, entry, transitions.retry(entry_id, entry.state), now)

    def paste_full_text(
        self, entry_id: int, *, full_html: str, language: str, now: datetime
    ) -> EntryListing:
        """The editor's own copy of the article (sanitized by the caller) becomes the entry's
        full text, and the entry waits for translation."""
        with self.session() as session:
            entry = row_or_missing(session, Entry, entry_id, "entry")
            move = transitions.pasted_text(entry_id, entry.state)
            entry.full_html = full_html
            entry.full_text_source = "editor"
            entry.language = language
            return self._moved(session, entry, move, now)

    def _moved(
        self, session: Session, entry: Entry, move: EntryMove, now: datetime
    ) -> EntryListing:
        apply_move(entry, move, now)
        session.flush()
        return self._listed(session, entry.id)

    def entry_counts(self) -> dict[str, int]:
        """How many entries are in each listed state."""
        counts = dict.fromkeys(LISTED_STATES[:-1], 0)
        with self.session() as session:
            for name, condition in _CONDITIONS.items():
                counts[name] = session.scalar(select(func.count(Entry.id)).where(condition)) or 0
        return counts
