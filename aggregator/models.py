"""Tables and state enums (SQLAlchemy 2.0 typed models). No queries, no I/O."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite keeps no zone), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class FeedStatus(enum.StrEnum):
    NEW = "new"  # never polled yet
    OK = "ok"  # last poll succeeded
    ERROR = "error"  # last poll failed; retried with backoff, never abandoned
    GONE = "gone"  # the server answered 410 Gone: paused until the URL changes
    REMOVED = "removed"  # no longer in config.toml; kept so its drafts keep their source


class EntryState(enum.StrEnum):
    NEW = "new"  # stored from the feed; full text not yet taken
    EXTRACTED = "extracted"  # full text and language known; waits for translation
    DRAFTED = "drafted"  # a complete draft exists
    SKIPPED = "skipped"  # kept but not translated; skip_reason says why


class DraftStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # was published, taken out of the feeds by an editor


def _enum(kind: type[enum.StrEnum]) -> Enum:
    return Enum(kind, values_callable=lambda k: [m.value for m in k], native_enum=False, length=16)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime(), dict[str, Any]: JSON}  # noqa: RUF012


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for the hot paths that skip the ORM's unit of work."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_url: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str] = mapped_column(String(500))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    interval_seconds: Mapped[float] = mapped_column(Float)
    status: Mapped[FeedStatus] = mapped_column(_enum(FeedStatus), default=FeedStatus.NEW)
    title: Mapped[str | None] = mapped_column(Text)
    site_url: Mapped[str | None] = mapped_column(String(2048))
    etag: Mapped[str | None] = mapped_column(String(1024))
    last_modified: Mapped[str | None] = mapped_column(String(200))
    body_hash: Mapped[str | None] = mapped_column(String(64))
    # Hashes of the raw <item>/<entry> elements of the last document stored, space-separated:
    # when the document changes, only the items not among them are parsed.
    item_fingerprints: Mapped[str | None] = mapped_column(Text)
    ttl_seconds: Mapped[float | None] = mapped_column(Float)
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # Cumulative since the feed was added (never reset): what /metrics reports as counters.
    polls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    poll_errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    entries: Mapped[list[Entry]] = relationship(back_populates="feed")


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(2048))
    url: Mapped[str | None] = mapped_column(String(2048))
    # A link blog's post: its own address on the feed's site, while ``url`` is the article
    # it links to. The credit links here.
    permalink: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(Text, default="")
    # The feed's categories of the entry, a JSON list of strings (None: it gave none), for
    # the feed's ``include``/``exclude`` rules.
    categories: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(500))
    published_at: Mapped[datetime | None]
    source_updated_at: Mapped[datetime | None]
    summary_html: Mapped[str | None] = mapped_column(Text)
    content_html: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    full_html: Mapped[str | None] = mapped_column(Text)
    full_text_source: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[EntryState] = mapped_column(_enum(EntryState), default=EntryState.NEW, index=True)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    locked_until: Mapped[datetime | None]
    # Who holds the claim ("host:pid:n"); a result is written only by the claim's holder.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    # Content updates taken since update_window_started_at (at most
    # [schedule] max_updates_per_entry_per_day in one day).
    update_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    update_window_started_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    feed: Mapped[Feed] = relationship(back_populates="entries")
    # One per target language of the feed (``[[feeds]] languages``).
    drafts: Mapped[list[Draft]] = relationship(back_populates="entry", order_by="Draft.id")


class Draft(Base):
    __tablename__ = "drafts"
    __table_args__ = (
        UniqueConstraint("entry_id", "target_language", name="uq_drafts_entry_language"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    status: Mapped[DraftStatus] = mapped_column(
        _enum(DraftStatus), default=DraftStatus.PENDING, index=True
    )
    title: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    source_language: Mapped[str] = mapped_column(String(16))
    target_language: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32))
    characters: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    # What this version's translation cost an LLM engine, as its service counted: tokens
    # sent and received (None: no LLM engine took part), and their price (None: unpriced).
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float)
    translated_at: Mapped[datetime | None] = mapped_column(index=True)  # this version's
    # A headline written for French readers that the engine proposed beside the literal
    # title ([translation.llm] headline = "adapt"); the editor may take it as the title.
    headline: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    approved_at: Mapped[datetime | None] = mapped_column(index=True)
    # The source as it was when the draft was approved: what a stale draft is diffed against.
    reviewed_source_html: Mapped[str | None] = mapped_column(Text)
    source_changed_at: Mapped[datetime | None]
    # The version the feeds and the article page serve, copied at approval: redrafting a
    # published article leaves it as it is until the new version is approved.
    published_title: Mapped[str | None] = mapped_column(Text)
    published_body_html: Mapped[str | None] = mapped_column(Text)
    published_approved_at: Mapped[datetime | None] = mapped_column(index=True)
    published_by: Mapped[str | None] = mapped_column(String(200))
    withdrawn_at: Mapped[datetime | None]  # taken out of the feeds; its page answers 410
    # The version in the feeds went out unreviewed (its feed's ``review = "auto"``): its
    # credit line says so, and the desk shows it until an editor approves a version.
    auto_published: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Translate this draft again when its entry is next processed: an editor asked, or its
    # original changed before review. The entry's other drafts (other languages) are left.
    redraft_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    entry: Mapped[Entry] = relationship(back_populates="drafts")
    events: Mapped[list[DraftEvent]] = relationship(
        back_populates="draft", order_by="DraftEvent.id"
    )
    edits: Mapped[list[DraftEdit]] = relationship(
        back_populates="draft", order_by="DraftEdit.id", cascade="all, delete-orphan"
    )


class DraftEdit(Base):
    """An editor's change to one part of a draft, re-applied over every redraft.

    ``kind`` is "title", "block" (``block``: its index, from 0) or "body" (a change of the
    article's structure, kept whole). ``source`` is the original text the edit was made
    against; when a redraft finds it changed, the edit is kept and flagged: ``new_source``
    holds the original as it is now, until the editor saves that part again or approves.
    """

    __tablename__ = "draft_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    block: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    new_source: Mapped[str | None] = mapped_column(Text)
    flagged_at: Mapped[datetime | None]
    actor: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]

    draft: Mapped[Draft] = relationship(back_populates="edits")


class DraftEvent(Base):
    """Audit trail: who did what to a draft, and when."""

    __tablename__ = "draft_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]

    draft: Mapped[Draft] = relationship(back_populates="events")


class TranslationMemory(Base):
    """A translated block, reused whenever the same normalised source block comes again.

    ``engine`` is the engine that produced it, or ``editor`` for an editor's correction,
    which is preferred over any engine's.
    """

    __tablename__ = "translation_memory"
    __table_args__ = (
        UniqueConstraint(
            "source_language", "target_language", "engine", "source_hash", name="uq_memory_block"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_language: Mapped[str] = mapped_column(String(16))
    target_language: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32))
    source_hash: Mapped[str] = mapped_column(String(64))
    source_text: Mapped[str] = mapped_column(Text)
    translated_text: Mapped[str] = mapped_column(Text)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime]


class EngineUsage(Base):
    """Characters and requests sent to one engine on one UTC day (for the daily budget)."""

    __tablename__ = "engine_usage"

    engine: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    characters: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    # LLM engines: tokens reserved before each request, then settled to what it cost.
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


# One engine's use not yet in ``engine_usage``: engine, UTC day (YYYY-MM-DD), characters,
# requests. The engine chain counts it; the store adds it up.
UsageCount = tuple[str, str, int, int]


class User(Base):
    """A person who may log in to the desk: their name goes into the audit trail and the
    credit. ``password_hash`` is an scrypt hash (``auth.hash_password``); a disabled user
    keeps their row so that the audit trail still names someone who existed."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # casefolded name: "Camille" and "camille" are one account
    name_key: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))  # "editor" | "admin"
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]


class BrowserSession(Base):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is stored, so
    a copy of the database does not give anyone a session. Deleting the row ends it."""

    __tablename__ = "browser_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # None for the shared-password mode, where ``name`` is the name typed at login.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # Shared-password mode: an HMAC of the password the session was opened with; a session
    # whose fingerprint is not the current password's is over.
    password_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginAttempt(Base):
    """Consecutive failed logins of one account from one client, and when the next attempt
    may come: kept in the database so that restarting the server does not reset them."""

    __tablename__ = "login_attempts"

    account: Mapped[str] = mapped_column(String(200), primary_key=True)  # "" = shared password
    client: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_allowed_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime] = mapped_column(index=True)


__all__ = [
    "Base",
    "BrowserSession",
    "Draft",
    "DraftEdit",
    "DraftEvent",
    "DraftStatus",
    "EngineUsage",
    "Entry",
    "EntryState",
    "Feed",
    "FeedStatus",
    "LoginAttempt",
    "TranslationMemory",
    "User",
]
