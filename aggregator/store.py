"""The only module that opens database sessions: queries, claims and state transitions.

No session is held open during network I/O: callers claim work in one short transaction,
receive plain snapshots (dataclasses below), do their I/O, and write the result in another.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from aggregator.config import FeedSettings, Settings
from aggregator.errors import InvalidTransitionError, NotFoundError, StorageError
from aggregator.models import (
    Draft,
    DraftEvent,
    DraftStatus,
    Entry,
    EntryState,
    Feed,
    FeedStatus,
)
from aggregator.parse import ParsedEntry

MIGRATIONS = Path(__file__).parent / "migrations"


# ---------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class FeedWork:
    id: int
    url: str
    name: str
    status: FeedStatus
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    interval_seconds: float
    error_count: int


@dataclass(frozen=True)
class FeedHealth:
    url: str
    name: str
    slug: str
    status: str
    title: str | None
    last_checked_at: datetime | None
    next_check_at: datetime | None
    error_count: int
    last_error: str | None
    entries: int


@dataclass(frozen=True)
class EntryWork:
    id: int
    feed_id: int
    feed_name: str
    url: str | None
    title: str
    author: str | None
    published_at: datetime | None
    summary_html: str | None
    content_html: str | None
    full_html: str | None
    language: str | None
    state: EntryState
    attempts: int


@dataclass(frozen=True)
class DraftContent:
    """What the translation stage produced for one entry."""

    title: str
    body_html: str
    source_language: str
    target_language: str
    engine: str
    characters: int
    requests: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DraftView:
    id: int
    status: DraftStatus
    title: str
    body_html: str
    original_title: str
    original_url: str | None
    author: str | None
    published_at: datetime | None
    feed: str
    feed_slug: str
    feed_url: str
    feed_title: str | None
    feed_site_url: str | None
    feed_updated_at: datetime | None
    engine: str
    source_language: str
    target_language: str
    characters: int
    requests: int
    warnings: tuple[str, ...]
    version: int
    reviewed_by: str | None
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None


@dataclass(frozen=True)
class PollOutcome:
    new_entries: int
    updated_entries: int


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:80] or "feed"


# ---------------------------------------------------------------- the store


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """A database, its migrations, and every query the program makes."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite"):
                self._ensure_sqlite_directory(url)
                self.engine: Engine = create_engine(
                    url, connect_args={"timeout": 30, "check_same_thread": False}
                )
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(url, pool_pre_ping=True, pool_size=10)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(f"cannot open database {self.safe_url}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.database.url)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for logs and messages."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    @staticmethod
    def _ensure_sqlite_directory(url: str) -> None:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StorageError(f"database {self.safe_url} failed: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ schema

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise StorageError(f"cannot upgrade database {self.safe_url}: {exc.orig}") from exc

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    # ------------------------------------------------------------ feeds

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

    def list_drafts(self, status: DraftStatus | None = None) -> list[DraftView]:
        with self.session() as session:
            query = select(Draft).order_by(Draft.created_at.desc(), Draft.id.desc())
            if status is not None:
                query = query.where(Draft.status == status)
            return [_draft_view(d) for d in session.scalars(query)]

    def get_draft(self, draft_id: int) -> DraftView:
        with self.session() as session:
            return _draft_view(self._draft(session, draft_id))

    def published(self, limit: int, *, feed_slug: str | None = None) -> list[DraftView]:
        """Approved drafts, newest approval first."""
        with self.session() as session:
            query = select(Draft).where(Draft.status == DraftStatus.APPROVED)
            if feed_slug is not None:
                query = query.join(Entry).join(Feed).where(Feed.slug == feed_slug)
            query = query.order_by(Draft.approved_at.desc(), Draft.id.desc()).limit(limit)
            return [_draft_view(d) for d in session.scalars(query)]

    def feed_slugs(self) -> dict[str, str]:
        with self.session() as session:
            return dict(session.execute(select(Feed.slug, Feed.name)).all())

    def approve(self, draft_id: int, *, actor: str, now: datetime) -> DraftView:
        return self._transition(draft_id, DraftStatus.APPROVED, actor=actor, now=now)

    def reject(self, draft_id: int, *, actor: str, now: datetime) -> DraftView:
        return self._transition(draft_id, DraftStatus.REJECTED, actor=actor, now=now)

    def _transition(
        self, draft_id: int, target: DraftStatus, *, actor: str, now: datetime
    ) -> DraftView:
        with self.session() as session:
            draft = self._draft(session, draft_id)
            if draft.status == target:
                return _draft_view(draft)
            if draft.status != DraftStatus.PENDING:
                raise InvalidTransitionError(
                    f"draft {draft_id} is {draft.status.value}; only a pending draft can be "
                    f"{'approved' if target == DraftStatus.APPROVED else 'rejected'}"
                )
            draft.status = target
            draft.reviewed_by = actor
            draft.updated_at = now
            draft.version += 1
            if target == DraftStatus.APPROVED:
                draft.approved_at = now
            session.add(DraftEvent(draft_id=draft.id, action=target.value, actor=actor, at=now))
            return _draft_view(draft)

    def edit(
        self,
        draft_id: int,
        *,
        actor: str,
        now: datetime,
        title: str | None = None,
        body_html: str | None = None,
    ) -> DraftView:
        with self.session() as session:
            draft = self._draft(session, draft_id)
            if draft.status == DraftStatus.REJECTED:
                raise InvalidTransitionError(f"draft {draft_id} is rejected and cannot be edited")
            changed = []
            if title is not None and title != draft.title:
                draft.title = title
                changed.append("title")
            if body_html is not None and body_html != draft.body_html:
                draft.body_html = body_html
                changed.append("body")
            if changed:
                draft.updated_at = now
                draft.version += 1
                session.add(
                    DraftEvent(
                        draft_id=draft.id,
                        action="edited",
                        actor=actor,
                        at=now,
                        detail=", ".join(changed),
                    )
                )
            return _draft_view(draft)

    def request_retranslation(self, draft_id: int, *, actor: str, now: datetime) -> DraftView:
        """Send the draft's entry back to the translation stage; the draft becomes pending."""
        with self.session() as session:
            draft = self._draft(session, draft_id)
            if draft.status == DraftStatus.REJECTED:
                raise InvalidTransitionError(f"draft {draft_id} is rejected; it stays a tombstone")
            draft.status = DraftStatus.PENDING
            draft.approved_at = None
            draft.updated_at = now
            draft.version += 1
            entry = draft.entry
            entry.state = EntryState.EXTRACTED if entry.full_html else EntryState.NEW
            entry.next_attempt_at = now
            entry.attempts = 0
            entry.last_error = None
            session.add(DraftEvent(draft_id=draft.id, action="retranslate", actor=actor, at=now))
            return _draft_view(draft)

    @staticmethod
    def _draft(session: Session, draft_id: int) -> Draft:
        draft = session.get(Draft, draft_id)
        if draft is None:
            raise NotFoundError(f"no draft with id {draft_id}")
        return draft


def _unique_slug(slug: str, taken: set[str]) -> str:
    candidate, n = slug, 2
    while candidate in taken:
        candidate = f"{slug}-{n}"
        n += 1
    return candidate


def _draft_view(draft: Draft) -> DraftView:
    entry = draft.entry
    feed = entry.feed
    return DraftView(
        id=draft.id,
        status=draft.status,
        title=draft.title,
        body_html=draft.body_html,
        original_title=entry.title,
        original_url=entry.url,
        author=entry.author,
        published_at=entry.published_at,
        feed=feed.name,
        feed_slug=feed.slug,
        feed_url=feed.url,
        feed_title=feed.title,
        feed_site_url=feed.site_url,
        feed_updated_at=feed.last_success_at,
        engine=draft.engine,
        source_language=draft.source_language,
        target_language=draft.target_language,
        characters=draft.characters,
        requests=draft.requests,
        warnings=tuple(draft.warnings or ()),
        version=draft.version,
        reviewed_by=draft.reviewed_by,
        created_at=draft.created_at,
        updated_at=draft.updated_at,
        approved_at=draft.approved_at,
    )
