"""Approved drafts -> Atom bytes, article pages' credit. Deterministic; no database access.

Credit follows RFC 4287: the entry's author is the original author, ``atom:source`` names
the original feed, ``link rel="via"`` points at the original article, and a visible French
credit line closes the content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

from lxml import etree

from aggregator import __version__
from aggregator.extract import sanitize
from aggregator.store import DraftView

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
FRENCH_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)  # fmt: skip
ENGINE_NAMES = {
    "google": "Google Traduction",
    "libre": "LibreTranslate",
    "deepl": "DeepL",
    "microsoft": "Microsoft Translator",
    "mymemory": "MyMemory",
}


@dataclass(frozen=True)
class Channel:
    """What identifies one published feed."""

    base_url: str
    path: str  # e.g. "/feeds/published.atom"
    title: str
    language: str = "fr"
    subtitle: str | None = None

    @property
    def self_url(self) -> str:
        return self.base_url.rstrip("/") + self.path

    def article_url(self, draft_id: int) -> str:
        return f"{self.base_url.rstrip('/')}/articles/{draft_id}"


def french_date(moment: datetime) -> str:
    day = "1er" if moment.day == 1 else str(moment.day)
    return f"{day} {FRENCH_MONTHS[moment.month - 1]} {moment.year}"


def credit_html(draft: DraftView) -> str:
    """The visible French credit line that closes every published article."""
    original = escape(draft.original_url or "", quote=True)
    title = escape(draft.original_title or draft.original_url or "article original")
    link = f'<a href="{original}">{title}</a>' if draft.original_url else title
    parts = [f"Source : {link}"]
    if draft.author:
        parts.append(f" — article original de {escape(draft.author)}")
    else:
        parts.append(" — article original")
    if draft.published_at:
        parts.append(f", publié le {french_date(draft.published_at)}")
    source = draft.feed_title or draft.feed
    parts.append(f" dans {escape(source)}.")
    engine = ENGINE_NAMES.get(draft.engine, draft.engine)
    if draft.reviewed_by and draft.approved_at:
        notice = (
            f" Traduction automatique ({escape(engine)}) relue par {escape(draft.reviewed_by)}."
        )
    else:
        notice = f" Traduction automatique ({escape(engine)}), pas encore relue."
    parts.append(notice)
    return f'<p class="credit"><small>{"".join(parts)}</small></p>'


def article_html(draft: DraftView) -> str:
    """Body as published: sanitized again at render time, then the credit line."""
    return sanitize(draft.body_html) + credit_html(draft)


def tag_uri(base_url: str, created: datetime, specific: str) -> str:
    """Stable entry ids (RFC 4151) owned by this site, never the source's id."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{created.astimezone(UTC):%Y-%m-%d}:{specific}"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def feed_updated(drafts: Sequence[DraftView]) -> datetime:
    moments = [d.updated_at for d in drafts]
    return max(moments) if moments else datetime(2000, 1, 1, tzinfo=UTC)


def atom_feed(channel: Channel, drafts: Sequence[DraftView]) -> bytes:
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})  # type: ignore[dict-item]
    root.set(XML_LANG, channel.language)
    _sub(root, "id", tag_uri(channel.base_url, datetime(2026, 1, 1, tzinfo=UTC), channel.path))
    _sub(root, "title", channel.title)
    if channel.subtitle:
        _sub(root, "subtitle", channel.subtitle)
    _sub(root, "updated", _rfc3339(feed_updated(drafts)))
    _sub(root, "link", rel="self", type="application/atom+xml", href=channel.self_url)
    _sub(root, "link", rel="alternate", type="text/html", href=channel.base_url.rstrip("/") + "/")
    _sub(root, "generator", "aggregator", version=__version__)
    for draft in drafts:
        _atom_entry(root, channel, draft)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def _atom_entry(root: etree._Element, channel: Channel, draft: DraftView) -> None:
    entry = _sub(root, "entry")
    entry.set(XML_LANG, draft.target_language)
    _sub(entry, "id", tag_uri(channel.base_url, draft.created_at, f"draft/{draft.id}"))
    _sub(entry, "title", draft.title, type="text")
    _sub(entry, "link", rel="alternate", type="text/html", href=channel.article_url(draft.id))
    if draft.original_url:
        _sub(entry, "link", rel="via", type="text/html", href=draft.original_url)
    _sub(entry, "published", _rfc3339(draft.approved_at or draft.created_at))
    _sub(entry, "updated", _rfc3339(draft.updated_at))
    author = _sub(entry, "author")
    _sub(author, "name", draft.author or draft.feed_title or draft.feed)
    _sub(entry, "content", article_html(draft), type="html")
    source = _sub(entry, "source")
    _sub(source, "id", draft.feed_url)
    _sub(source, "title", draft.feed_title or draft.feed)
    _sub(source, "link", rel="self", href=draft.feed_url)
    if draft.feed_site_url:
        _sub(source, "link", rel="alternate", type="text/html", href=draft.feed_site_url)
    _sub(source, "updated", _rfc3339(draft.feed_updated_at or draft.created_at))
