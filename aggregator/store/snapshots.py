"""Plain snapshots handed out by the store: safe to keep while the session is closed."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from aggregator.models import DraftStatus, EntryState, FeedStatus


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
