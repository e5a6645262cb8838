"""Plain snapshots handed out by the store: safe to keep while the session is closed."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
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
    config_url: str = ""  # as written in config.toml: its host is trusted
    next_check_at: datetime | None = None  # when this check was due: the feed's phase
    ttl_seconds: float | None = None  # the feed's last <ttl>, for polls that skip parsing
    item_fingerprints: tuple[str, ...] = ()  # items of the last document stored


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
    last_success_at: datetime | None = None
    config_url: str = ""
    site_url: str | None = None


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
    feed_config_url: str = ""  # its feed as written in config.toml (which settings apply)
    categories: tuple[str, ...] = ()  # the feed's categories of the entry
    # The entry's drafts when it was claimed, by target language: the status of each, None
    # for one to translate again (an editor asked, or its original changed before review).
    drafts: dict[str, DraftStatus | None] = field(default_factory=dict)


@dataclass(frozen=True)
class EntryListing:
    """One entry as the editor sees it in a list: where it stands in the flow, and why.

    ``state`` is what the editor acts on: ``skipped`` (kept, not translated: ``reason``),
    ``failing`` (waits for a stage whose last attempt failed: ``last_error``), ``pending``
    (waits, no failure yet) or ``drafted``; ``stage`` is the stored state behind it.
    """

    id: int
    feed: str
    feed_slug: str
    title: str
    url: str | None
    state: str
    stage: EntryState
    reason: str | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    published_at: datetime | None
    updated_at: datetime
    full_text_source: str | None
    draft_id: int | None


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
    # LLM engines' tokens (None: no LLM engine in the chain) and their cost (None: unpriced).
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    headline: str | None = None  # proposed for French readers, beside the literal title


@dataclass(frozen=True)
class EditFlag:
    """An editor's edit kept over a redraft although its original changed: the editor
    compares ``old_source`` (what the edit was made against) with ``new_source``."""

    part: str  # "title", "block N" (from 1) or "body"
    index: int | None  # the block's index from 0, as in the API's blocks
    text: str  # the edit, as kept
    old_source: str
    new_source: str
    flagged_at: datetime


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
    # When the original changed after approval; set while the change is not yet reviewed.
    source_changed_at: datetime | None = None
    # A version is in the feeds (for a redraft of a published article: the one approved
    # before, which the public views are given in place of the working copy).
    published: bool = False
    withdrawn_at: datetime | None = None
    # What this version's translation cost an LLM engine (None: no LLM engine; unpriced).
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    # The headline the engine proposed for French readers, which the editor may take.
    headline: str | None = None
    # The version in the feeds went out unreviewed (its feed's ``review = "auto"``).
    auto_published: bool = False
    # The entry it translates: its drafts in the feed's other target languages share it.
    entry_id: int = 0
    # Filled by ``get_draft`` and ``get_draft_detail`` (not by lists): the parts an editor
    # changed ("title", "block N" counting from 1, "body"), and those whose original changed.
    edited: tuple[str, ...] = ()
    flags: tuple[EditFlag, ...] = ()

    @property
    def stale(self) -> bool:
        """Approved, and the original article changed since: the editor should look again."""
        return (
            self.status == DraftStatus.APPROVED
            and self.source_changed_at is not None
            and (self.approved_at is None or self.source_changed_at >= self.approved_at)
        )


@dataclass(frozen=True)
class DraftEventView:
    """One line of the audit trail."""

    draft_id: int
    action: str
    actor: str
    detail: str | None
    at: datetime
    draft_title: str = ""


@dataclass(frozen=True)
class DraftDetail:
    """A draft with what a reviewer compares it to, and its history."""

    draft: DraftView
    source_html: str  # the original article's text as it was translated
    reviewed_source_html: str | None  # the original as it was when the draft was approved
    feed_content_html: str | None  # the feed's current content for the entry
    full_text_source: str | None  # "feed" or "page": where source_html was taken from
    events: tuple[DraftEventView, ...]
    # The same article's drafts in its feed's other languages: (language, id, status).
    translations: tuple[tuple[str, int, DraftStatus], ...] = ()


@dataclass(frozen=True)
class PublicationStamp:
    """Cheap fingerprint of what the public feeds show.

    ``published`` changes when a published feed may have changed (approved drafts, their
    entries, the feeds' names); ``changed_at`` is the newest change to any draft or
    published entry, so it never goes back in time (a draft taken out of the feed is
    updated too): the feeds' Last-Modified.
    """

    published: tuple[object, ...]
    changed_at: datetime | None


@dataclass(frozen=True)
class UnchangedPoll:
    """A poll that found the feed as it was (304, or the same bytes)."""

    feed_id: int
    now: datetime
    next_check_at: datetime
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class PollOutcome:
    new_entries: int
    updated_entries: int
    deferred_updates: int = 0  # changed entries over their daily limit, taken later


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:80] or "feed"
