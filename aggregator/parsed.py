"""A feed and its entries as read: what polling hands the store (base types, so that neither
the store nor the process that receives a parse from a parser child imports the parser)."""

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


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    site_url: str | None
    ttl_seconds: float | None
    entries: tuple[ParsedEntry, ...]
    warning: str | None = None  # set when the feed was broken but something could be kept
    # One per <item>/<entry> of the document, whether parsed or left out as known; empty
    # when the document was not clean enough to vouch for its items.
    item_fingerprints: tuple[str, ...] = ()
