"""Feeds: sync with config.toml, claims, poll outcomes, entries as stored from feeds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aggregator.config import FeedSettings, Settings
from aggregator.models import DraftStatus, Entry, EntryState, Feed, FeedStatus
from aggregator.parse import ParsedEntry
from aggregator.store.base import StoreBase
from aggregator.store.snapshots import (
    FeedHealth,
    FeedWork,
    PollOutcome,
    slugify,
)


class FeedStore(StoreBase):
    def sync_feeds(self, feeds: Sequence[FeedSettings], settings: Settings, now: datetime) -> None:
        """Make the feeds table match config.toml: add, update, mark removed."""
        with self.session() as session:
            existing = {f.config_url: f for f in session.scalars(select(Feed))}
            slugs = {f.slug for f in existing.values()}
            wanted = set()
            for spec in feeds:
                wanted.add(spec.url)
                interval = settings.feed_interval(spec)
                feed = existing.get(spec.url)
                if feed is None:
                    slug = _unique_slug(slugify(spec.name or spec.url), slugs)
                    slugs.add(slug)
                    session.add(
                        Feed(
                            config_url=spec.url,
                            url=spec.url,
                            name=spec.display_name,
                            slug=slug,
                            interval_seconds=interval,
                            status=FeedStatus.NEW,
                            next_check_at=now,
                            error_count=0,
                            created_at=now,
                        )
                    )
                    continue
                feed.name = spec.display_name
                feed.interval_seconds = interval
                if feed.status == FeedStatus.REMOVED:
                    feed.status = FeedStatus.NEW
                    feed.next_check_at = now
            for url, feed in existing.items():
                if url not in wanted and feed.status != FeedStatus.REMOVED:
                    feed.status = FeedStatus.REMOVED

    def claim_due_feeds(
        self, now: datetime, lease: timedelta, *, only: Iterable[str] = (), force: bool = False
    ) -> list[FeedWork]:
        """Take the feeds whose next check has come (all of them with force), under a lease."""
        names = list(only)
        with self.session() as session:
            query = select(Feed).where(Feed.status.not_in([FeedStatus.REMOVED]))
            if not force:
                query = query.where(
                    Feed.status != FeedStatus.GONE,
                    or_(Feed.next_check_at.is_(None), Feed.next_check_at <= now),
                )
            if names:
                query = query.where(
                    or_(Feed.name.in_(names), Feed.url.in_(names), Feed.config_url.in_(names))
                )
            query = query.where(or_(Feed.locked_until.is_(None), Feed.locked_until <= now))
            query = query.order_by(Feed.next_check_at).with_for_update(skip_locked=True)
            claimed = []
            for feed in session.scalars(query):
                feed.locked_until = now + lease
                claimed.append(
                    FeedWork(
                        id=feed.id,
                        url=feed.url,
                        name=feed.name,
                        status=feed.status,
                        etag=feed.etag,
                        last_modified=feed.last_modified,
                        body_hash=feed.body_hash,
                        interval_seconds=feed.interval_seconds,
                        error_count=feed.error_count,
                    )
                )
            return claimed

    def unknown_feed_names(self, names: Iterable[str]) -> list[str]:
        with self.session() as session:
            known: set[str] = set()
            for feed in session.scalars(select(Feed)):
                known.update((feed.name, feed.url, feed.config_url))
            return [n for n in names if n not in known]

    def record_feed_success(
        self,
        feed_id: int,
        *,
        now: datetime,
        next_check_at: datetime,
        entries: Sequence[ParsedEntry],
        title: str | None,
        site_url: str | None,
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None,
        ttl_seconds: float | None,
        new_url: str | None = None,
    ) -> PollOutcome:
        with self.session() as session:
            feed = session.get_one(Feed, feed_id)
            outcome = self._store_entries(session, feed_id, entries, now)
            feed.status = FeedStatus.OK
            feed.title = title or feed.title
            feed.site_url = site_url or feed.site_url
            feed.etag = etag
            feed.last_modified = last_modified
            feed.body_hash = body_hash
            feed.ttl_seconds = ttl_seconds
            if new_url:
                feed.url = new_url
            self._checked(feed, now, next_check_at)
            feed.last_success_at = now
            feed.error_count = 0
            feed.last_error = None
            return outcome

    def record_feed_unchanged(
        self,
        feed_id: int,
        *,
        now: datetime,
        next_check_at: datetime,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        with self.session() as session:
            feed = session.get_one(Feed, feed_id)
            feed.status = FeedStatus.OK
            feed.etag = etag or feed.etag
            feed.last_modified = last_modified or feed.last_modified
            self._checked(feed, now, next_check_at)
            feed.last_success_at = now
            feed.error_count = 0
            feed.last_error = None

    def record_feed_error(
        self,
        feed_id: int,
        message: str,
        *,
        now: datetime,
        next_check_at: datetime,
        gone: bool = False,
    ) -> None:
        with self.session() as session:
            feed = session.get_one(Feed, feed_id)
            feed.status = FeedStatus.GONE if gone else FeedStatus.ERROR
            feed.error_count += 1
            feed.last_error = message
            self._checked(feed, now, next_check_at)

    @staticmethod
    def _checked(feed: Feed, now: datetime, next_check_at: datetime) -> None:
        feed.last_checked_at = now
        feed.next_check_at = next_check_at
        feed.locked_until = None

    def _store_entries(
        self, session: Session, feed_id: int, entries: Sequence[ParsedEntry], now: datetime
    ) -> PollOutcome:
        """Insert-or-ignore by (feed, key); a changed content hash is an update."""
        if not entries:
            return PollOutcome(0, 0)
        unique = {e.key: e for e in entries}
        known = dict(
            session.execute(
                select(Entry.key, Entry.content_hash).where(
                    Entry.feed_id == feed_id, Entry.key.in_(list(unique))
                )
            ).all()
        )
        fresh = [e for k, e in unique.items() if k not in known]
        changed = [e for k, e in unique.items() if k in known and known[k] != e.content_hash]
        inserted = 0
        if fresh:
            insert = postgresql.insert if self.is_postgresql else sqlite.insert
            statement = insert(Entry).on_conflict_do_nothing(index_elements=["feed_id", "key"])
            result = session.execute(statement, [self._entry_row(feed_id, e, now) for e in fresh])
            rowcount = getattr(result, "rowcount", None)
            inserted = max(rowcount, 0) if rowcount is not None else len(fresh)
        for item in changed:
            self._apply_update(session, feed_id, item, now)
        return PollOutcome(new_entries=inserted, updated_entries=len(changed))

    @staticmethod
    def _entry_row(feed_id: int, e: ParsedEntry, now: datetime) -> dict[str, Any]:
        return {
            "feed_id": feed_id,
            "key": e.key,
            "url": e.url,
            "title": e.title,
            "author": e.author,
            "published_at": e.published_at,
            "source_updated_at": e.updated_at,
            "summary_html": e.summary_html,
            "content_html": e.content_html,
            "content_hash": e.content_hash,
            "state": EntryState.NEW,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _apply_update(session: Session, feed_id: int, item: ParsedEntry, now: datetime) -> None:
        entry = session.scalars(
            select(Entry).where(Entry.feed_id == feed_id, Entry.key == item.key)
        ).one()
        draft = entry.draft
        entry.url, entry.title, entry.author = item.url, item.title, item.author
        entry.summary_html, entry.content_html = item.summary_html, item.content_html
        entry.source_updated_at = item.updated_at
        entry.content_hash = item.content_hash
        entry.updated_at = now
        if draft is not None and draft.status != DraftStatus.PENDING:
            # A rejected draft is a tombstone; an approved one stays published as reviewed.
            note = "the original article changed after review"
            if draft.status == DraftStatus.APPROVED and note not in draft.warnings:
                draft.warnings = [*draft.warnings, note]
            return
        entry.state = EntryState.NEW
        entry.attempts = 0
        entry.last_error = None
        entry.next_attempt_at = now

    def feed_health(self) -> list[FeedHealth]:
        with self.session() as session:
            counts = dict(
                session.execute(
                    select(Entry.feed_id, func.count(Entry.id)).group_by(Entry.feed_id)
                ).all()
            )
            return [
                FeedHealth(
                    url=f.url,
                    name=f.name,
                    slug=f.slug,
                    status=f.status.value,
                    title=f.title,
                    last_checked_at=f.last_checked_at,
                    next_check_at=f.next_check_at,
                    error_count=f.error_count,
                    last_error=f.last_error,
                    entries=counts.get(f.id, 0),
                )
                for f in session.scalars(
                    select(Feed).where(Feed.status != FeedStatus.REMOVED).order_by(Feed.name)
                )
            ]

    # ------------------------------------------------------------ entries


def _unique_slug(slug: str, taken: set[str]) -> str:
    candidate, n = slug, 2
    while candidate in taken:
        candidate = f"{slug}-{n}"
        n += 1
    return candidate
