"""Feed bytes -> ParsedFeed / ParsedEntry with stable entry keys. Pure: no I/O.

feedparser is given bytes, never a URL; the fetch URL is passed as the document's location
so that relative links and xml:base resolve against it. Before feedparser sees the bytes,
a DOCTYPE that declares entities is removed (feedparser blocks XXE and billion laughs, not
the quadratic blow-up), and bytes that declare no encoding and are not UTF-8 get a guessed
one. A feed cut short keeps its complete entries only.

Every pass over the whole document is linear in its size (feeds come from anyone, up to the
15 MiB cap): elements are found with ``bytes.find`` and patterns that cannot backtrack
across an open tag, never with a lazy ``.*?`` from every candidate start, which is
quadratic when the end never comes. Patterns with ``.*?`` only see the bounded head.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import html
import itertools
import re
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import charset_normalizer
import feedparser

from aggregator.errors import NotAFeedError, ParseError
from aggregator.parsed import ParsedEntry, ParsedFeed
from aggregator.untrusted import plain_text, same_site

# An internal DTD subset is where entity bombs (billion laughs, quadratic blow-up) and
# external entities (XXE) live; feeds never need one.
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_DOCTYPE_DELIMITER = re.compile(rb"[>\[]")
_SUBSET_END = re.compile(rb"\]\s*>")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_PROLOGUE = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:\s+|<\?xml[^>]*>|<!--.*?-->)*", re.DOTALL)
_HTML_ROOT = re.compile(rb"<(?:!doctype\s+html|html)[\s>]", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"<\?xml[^>]*encoding\s*=", re.IGNORECASE)
_ENTRY_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>")
_ITEM_START = re.compile(rb"<((?:[\w.-]+:)?(?:item|entry))[\s>]")
_CLOSE_REST = re.compile(rb"\s*>")
_SLASH_DATE = re.compile(
    r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)
# Bozo reasons that say nothing about the feed being broken (a missing or non-XML
# Content-Type, an encoding declared wrongly but recovered).
_HARMLESS = feedparser.ThingsNobodyCaresAboutButMe
_SNIFF_BYTES = 4096
_GUESS_BYTES = 64 * 1024
_DECODE_CHUNK = 1024 * 1024  # the UTF-8 check decodes this much at a time, not 4× the body


def strip_entity_declarations(body: bytes) -> bytes:
    """``body`` without its first DOCTYPE that has an internal subset (``[...]``), when it
    declares entities anywhere; ``body`` itself (the same object) when there is none."""
    if not _ENTITY_DECLARATION.search(body):
        return body
    span = _doctype_with_subset(body)
    return body if span is None else body[: span[0]] + body[span[1] :]


def _doctype_with_subset(body: bytes) -> tuple[int, int] | None:
    """Where ``<!DOCTYPE … [ … ] >`` is, in one pass: each DOCTYPE is followed to its first
    ``>`` or ``[``; after a ``[``, the first ``]>`` closes it. With no ``]>`` left in the
    document, no later DOCTYPE can close either, so the search stops there."""
    position = 0
    while (start := _DOCTYPE.search(body, position)) is not None:
        delimiter = _DOCTYPE_DELIMITER.search(body, start.end())
        if delimiter is None:
            return None
        if delimiter.group() == b">":
            position = delimiter.end()  # a DOCTYPE without a subset: look further on
            continue
        end = _SUBSET_END.search(body, delimiter.end())
        return None if end is None else (start.start(), end.end())
    return None


def is_html_page(body: bytes) -> bool:
    """True when the document starts as an HTML page (after any XML prologue and comments)."""
    head = body[:_SNIFF_BYTES]
    start = _PROLOGUE.match(head)
    return bool(_HTML_ROOT.match(head, start.end() if start else 0))


def _feedparser(document: bytes, headers: dict[str, str]) -> Any:
    # No sanitizing here: feed HTML is stored as received and every use of it goes through
    # extract.sanitize (nh3), which runs last; feedparser's own pass would be paid twice.
    return feedparser.parse(
        document, response_headers=headers, resolve_relative_uris=True, sanitize_html=False
    )


def parse_feed(
    body: bytes,
    url: str,
    content_type: str | None = None,
    *,
    known_items: Collection[str] = (),
) -> ParsedFeed:
    """Parse a feed document fetched from ``url``; ParseError when nothing can be kept.

    ``known_items`` are the ``item_fingerprints`` of the last document stored: the items
    found among them are left out (they are stored already, unchanged), so a feed that
    gained one entry costs the parsing of one entry. Whenever that shortcut is in any doubt
    (the document is not clean, an item was not recognised), the whole document is parsed.
    """
    if not body or body.isspace():
        raise ParseError("not a feed: the server sent an empty body")
    if is_html_page(body):
        raise NotAFeedError("not a feed: the server sent an HTML page")
    if not _PROLOGUE.sub(b"", body[:_SNIFF_BYTES]).startswith(b"<"):
        kind = (content_type or "").split(";")[0].strip() or "a document"
        raise ParseError(f"not a feed: the server sent {kind}, not XML")
    warnings = []
    cleaned = strip_entity_declarations(body)
    if cleaned is not body:
        warnings.append("its DOCTYPE declared XML entities, which were removed unread")
    if _ENTITY_DECLARATION.search(cleaned):
        raise ParseError("refused: the feed declares XML entities in a way that cannot be removed")
    headers = {
        "content-location": url,
        "content-type": _with_guessed_charset(cleaned, content_type or "application/xml"),
    }
    items = item_spans(cleaned)
    fingerprints = tuple(fingerprint for _, _, fingerprint in items)
    if known_items and items and not warnings:
        fresh = [(start, end) for start, end, f in items if f not in known_items]
        document = (
            cleaned[: items[0][0]]
            + b"".join(cleaned[start:end] for start, end in fresh)
            + cleaned[items[-1][1] :]
        )
        parsed: Any = _feedparser(document, headers)
        if not parsed.get("bozo") and len(parsed.get("entries", [])) == len(fresh):
            return _feed(parsed, parsed["entries"], None, fingerprints)
    parsed = _feedparser(cleaned, headers)
    feed = parsed.get("feed", {})
    raw_entries = list(parsed.get("entries", []))
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if isinstance(problem, _HARMLESS):
        problem = None
    if problem is not None:
        reason = _describe_bozo(problem)
        complete = len(_ENTRY_END.findall(cleaned))
        if complete < len(raw_entries):
            raw_entries = raw_entries[:complete]
            warnings.append(
                f"it is cut short or malformed ({reason}); kept the {complete} complete entries"
            )
        else:
            warnings.append(f"it is malformed ({reason}); kept what could be read")
        if not raw_entries and not feed.get("title"):
            raise ParseError(f"not a feed: the XML is broken beyond repair ({reason})")
    elif not parsed.get("version") and not raw_entries:
        raise ParseError("not a feed: the document is neither RSS nor Atom")
    # Fingerprints only vouch for items of a clean document whose every item was recognised.
    clean = problem is None and not warnings and len(items) == len(raw_entries)
    return _feed(parsed, raw_entries, "; ".join(warnings) or None, fingerprints if clean else ())


def _feed(
    parsed: Any, raw_entries: list[Any], warning: str | None, fingerprints: tuple[str, ...]
) -> ParsedFeed:
    feed = parsed.get("feed", {})
    return ParsedFeed(
        title=_plain_title(feed),
        site_url=feed.get("link") or None,
        ttl_seconds=_ttl(feed.get("ttl")),
        entries=tuple(_entry(e, feed) for e in raw_entries),
        warning=warning,
        item_fingerprints=fingerprints,
    )


def item_spans(body: bytes) -> list[tuple[int, int, str]]:
    """(start, end, fingerprint) of each <item> or <entry> element, in document order.

    Empty unless the items are found side by side (nothing but blanks between them): a
    split that went wrong ("</item>" quoted in a CDATA section) leaves text in between.

    One pass: each start tag is followed to the first end tag of the same name with
    ``bytes.find``; a start tag that never ends gives up on the split (the whole document
    is then parsed), instead of searching the rest of the document again from every one.
    """
    spans = []
    position = 0
    while (start := _ITEM_START.search(body, position)) is not None:
        end = _end_of(body, b"</" + start.group(1), start.end())
        if end is None:
            return []
        digest = hashlib.blake2b(memoryview(body)[start.start() : end], digest_size=12)
        spans.append((start.start(), end, digest.hexdigest()))
        position = end
    for (_, end, _), (next_start, _, _) in itertools.pairwise(spans):
        if end != next_start and not body[end:next_start].isspace():
            return []
    return spans


def _end_of(body: bytes, close: bytes, position: int) -> int | None:
    """The end of the first ``close`` tag (``</name``, blanks, ``>``) at or after ``position``."""
    while (found := body.find(close, position)) >= 0:
        rest = _CLOSE_REST.match(body, found + len(close))
        if rest is not None:
            return rest.end()
        position = found + len(close)
    return None


def _with_guessed_charset(body: bytes, content_type: str) -> str:
    """Add a charset guessed from the bytes when nothing declares one and UTF-8 does not fit."""
    if "charset=" in content_type.lower() or _XML_ENCODING.match(body[:_SNIFF_BYTES].lstrip()):
        return content_type
    if body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return content_type
    if not _is_utf8(body):
        guess = charset_normalizer.from_bytes(body[:_GUESS_BYTES]).best()
        if guess is not None:
            return f"{content_type.split(';')[0].strip()}; charset={guess.encoding}"
    return content_type


def _is_utf8(body: bytes) -> bool:
    # A piece at a time: decoding 15 MiB at once would hold up to 60 MB of text for a yes/no.
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    try:
        for start in range(0, len(view), _DECODE_CHUNK):
            decoder.decode(view[start : start + _DECODE_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _describe_bozo(exc: Any) -> str:
    message = getattr(exc, "getMessage", None)
    text = message() if callable(message) else str(exc)
    line = getattr(exc, "getLineNumber", None)
    return f"{text} at line {line()}" if callable(line) else str(text)


def _slash_date(value: str) -> time.struct_time | None:
    """'2020/1/10 14:33:00' (Chinese forum software, some CMSs): feedparser misreads it."""
    match = _SLASH_DATE.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g or 0) for g in match.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return moment.timetuple()


feedparser.registerDateHandler(_slash_date)


def _entry(raw: Any, feed: Any) -> ParsedEntry:
    url = raw.get("link") or None
    title = _plain_title(raw) or ""
    summary = raw.get("summary") or None
    content = _best_content(raw.get("content") or [])
    if content is not None and summary is not None and content.strip() == summary.strip():
        summary = None
    author = raw.get("author") or feed.get("author") or None
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
        # What a reader sees; dates are left out so that a feed which restamps its entries on
        # every fetch does not turn each fetch into an update.
        content_hash=_hash(title, url, summary, content),
        permalink=_permalink(raw, url, feed.get("link")),
        categories=_categories(raw),
    )


def _categories(raw: Any) -> tuple[str, ...]:
    """The entry's categories (RSS ``<category>``, Atom ``term``), each once, in order."""
    terms = (_text(tag.get("term") or tag.get("label")) for tag in raw.get("tags") or ())
    return tuple(dict.fromkeys(term for term in terms if term))


def _permalink(raw: Any, url: str | None, site_url: str | None) -> str | None:
    """The post's own address on the feed's site when its link points to another site: a
    rel="related" link there, else an id that is a URL there; None for an ordinary post."""
    if not url or not same_site(site_url, site_url) or same_site(url, site_url):
        return None
    for link in raw.get("links") or []:
        href = link.get("href")
        if link.get("rel") == "related" and same_site(href, site_url):
            return str(href)[:2048]
    guid = raw.get("id")
    on_site = isinstance(guid, str) and guid.startswith(("https://", "http://"))
    return str(guid)[:2048] if on_site and same_site(guid, site_url) else None


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


def _plain_title(raw: Any) -> str | None:
    """Titles are text: an HTML or XHTML title (Atom type="html") loses its tags."""
    title = raw.get("title")
    kind = (raw.get("title_detail") or {}).get("type", "text/plain")
    if title and "html" in kind:
        title = html.unescape(_without_tags(str(title)))
    return _text(title)


def _without_tags(text: str) -> str:
    """``text`` without its ``<…>`` tags, in one pass: a ``<`` with no ``>`` after it is
    kept as text, and so is everything after it (no later ``<`` can close either)."""
    kept, position = [], 0
    while (start := text.find("<", position)) >= 0:
        end = text.find(">", start)
        if end < 0:
            break
        kept.append(text[position:start])
        position = end + 1
    kept.append(text[position:])
    return "".join(kept)


def _text(value: Any) -> str | None:
    """Titles and names as stored: one line, without NUL, other controls or the bidi
    overrides that make a title read backwards (U+202E)."""
    if not value:
        return None
    return re.sub(r"\s+", " ", plain_text(str(value))).strip() or None


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
