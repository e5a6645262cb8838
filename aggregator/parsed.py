"""An entry as read from a feed: what polling hands the store (a base type, so the store
need not import the parser)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ParsedEntry:
    key: str
    url: str | None
    title: str
    author: str | None
    published_at: datetime | None
    updated_at: datetime | None
    summary_html: str | None
    content_html: str | None
    content_hash: str
    # A link blog's post links to someone else's article; this is where the post itself
    # lives on the feed's site (Daring Fireball's rel="related"): what its credit links to.
    permalink: str | None = None
    # The feed's categories (tags) of the entry, as written: what ``category:`` rules match.
    categories: tuple[str, ...] = ()
