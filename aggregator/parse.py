"""Feed bytes -> ParsedFeed / ParsedEntry with stable entry keys. Pure: no I/O.

feedparser is given bytes, never a URL; the fetch URL is passed as the document's location
so that relative links and xml:base resolve against it.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from aggregator.errors import ParseError

# An internal DTD subset is where entity bombs (billion laughs, quadratic blow-up) and
# external entities (XXE) live; feeds never need one.
_DOCTYPE_WITH_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[.*?\]\s*>", re.DOTALL | re.IGNORECASE)
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.I | re.S)


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


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    site_url: str | None
    ttl_seconds: float | None
    entries: tuple[ParsedEntry, ...]
    warning: str | None = None  # set when the feed was broken but something could be kept


def strip_entity_declarations(body: bytes) -> bytes:
    if not _ENTITY_DECLARATION.search(body):
        return body
    return _DOCTYPE_WITH_SUBSET.sub(b"", body)


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    if not body.strip():
        raise ParseError(f"{url}: the server sent an empty body instead of a feed")
    if _HTML_START.match(body[:4096]):
        raise ParseError(f"{url}: this is an HTML page, not a feed")
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed: Any = feedparser.parse(
        strip_entity_declarations(body), response_headers=headers, resolve_relative_uris=True
    )
    feed = parsed.get("feed", {})
    raw_entries = parsed.get("entries", [])
    warning = None
    if parsed.get("bozo"):
        problem = _describe_bozo(parsed.get("bozo_exception"))
        if not raw_entries and not feed.get("title"):
            raise ParseError(f"{url}: not a readable feed ({problem})")
        if not raw_entries and parsed.get("version", "") == "":
            raise ParseError(f"{url}: not a readable feed ({problem})")
        warning = f"the feed is malformed ({problem}); kept what could be read"
    elif not parsed.get("version") and not raw_entries:
        raise ParseError(f"{url}: not an RSS or Atom feed")
    entries = tuple(_entry(e, feed) for e in raw_entries)
    return ParsedFeed(
        title=_text(feed.get("title")),
        site_url=feed.get("link") or None,
        ttl_seconds=_ttl(feed.get("ttl")),
        entries=entries,
        warning=warning,
    )


def _describe_bozo(exc: Any) -> str:
    if exc is None:
        return "unknown problem"
    message = getattr(exc, "getMessage", None)
    text = message() if callable(message) else str(exc)
    line = getattr(exc, "getLineNumber", None)
    return f"{text} at line {line()}" if callable(line) else str(text)


def _entry(raw: Any, feed: Any) -> ParsedEntry:
    url = raw.get("link") or None
    title = _text(raw.get("title")) or ""
    summary = raw.get("summary") or None
    content = _best_content(raw.get("content") or [])
    if content is not None and summary is not None and content.strip() == summary.strip():
        summary = None
    author = raw.get("author") or feed.get("author") or None
    hash_value = _hash(title, url, summary, content)
    key = raw.get("id") or url or f"sha256:{_hash(title, content or summary)}"
    return ParsedEntry(
        key=str(key)[:2048],
        url=url,
        title=title,
        author=_text(author),
        published_at=_date(raw.get("published_parsed")) or _date(raw.get("updated_parsed")),
        updated_at=_date(raw.get("updated_parsed")),
        summary_html=summary,
        content_html=content,
        content_hash=hash_value,
    )


def _best_content(contents: list[Any]) -> str | None:
    html = [c.get("value", "") for c in contents if "html" in c.get("type", "text/html")]
    values = html or [c.get("value", "") for c in contents]
    values = [v for v in values if v and v.strip()]
    return max(values, key=len) if values else None


def _hash(*parts: str | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part or "").encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _text(value: Any) -> str | None:
    if not value:
        return None
    return re.sub(r"\s+", " ", str(value)).strip() or None


def _date(value: time.struct_time | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _ttl(value: Any) -> float | None:
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        return None
    return minutes * 60 if minutes > 0 else None
