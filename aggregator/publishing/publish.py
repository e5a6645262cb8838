"""Drafts -> Atom, RSS 2.0 and JSON Feed 1.1 bytes, article credit. Deterministic; no I/O.

Credit follows RFC 4287: the entry's author is the original author, ``atom:source`` names
the original feed, ``link rel="via"`` points at the original article, and a visible French
credit line closes the content. RSS carries ``<source url=…>`` and ``dc:creator``; JSON Feed
``authors``, ``external_url`` and a ``_source`` extension. Every HTML body is sanitized again
here, whatever the database holds; every URL that came from outside goes through
``untrusted.safe_http_url`` (a link that is not http(s) is left out, in every format) and
every text through ``untrusted.plain_text``. Long feeds are paged as RFC 5005 says (section 3:
``first``/``next``/``previous``/``last`` links; JSON Feed's ``next_url``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from aggregator import __version__
from aggregator.extraction.extract import sanitize, text_of
from aggregator.languages import article_path, language_prefix
from aggregator.publishing.credit import credit_html, source_name
from aggregator.store import DraftView
from aggregator.untrusted import plain_text, safe_http_url

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM_TYPE = "application/atom+xml"
RSS_TYPE = "application/rss+xml"
JSON_FEED_TYPE = "application/feed+json"
# The feeds' own ids are dated from the day this scheme was adopted, never from content.
FEED_ID_DATE = datetime(2026, 1, 1, tzinfo=UTC)
EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)
SUMMARY_CHARACTERS = 280
# Characters XML 1.0 cannot carry at all (lxml refuses them): dropped from any text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BLOCK_END = re.compile(r"(</(?:p|h[1-6]|li|blockquote|figcaption|td|th|pre|dd|dt|div)>|<br>)")


@dataclass(frozen=True)
class Channel:
    """What identifies one published feed, and which page of it this document is."""

    base_url: str
    path: str  # e.g. "/feeds/published.atom"
    title: str
    language: str = "fr"
    subtitle: str | None = None
    hub_url: str | None = None
    page: int = 1
    last_page: int = 1
    query: str = ""  # kept on every link of the feed (the reviewers' token)
    # The language published at the root paths ([translation] target_language); the
    # others live under /{language}/.
    main_language: str = "fr"
    # By entry, its published drafts' ids by language (entries published in several):
    # each translation's entry links to the others (``hreflang``).
    translations: Mapping[int, Mapping[str, int]] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def self_url(self) -> str:
        return self.page_url(self.page)

    @property
    def home_url(self) -> str:
        return self.root + language_prefix(self.language, self.main_language) + "/"

    @property
    def feed_id(self) -> str:
        return tag_uri(self.base_url, FEED_ID_DATE, self.path)

    def page_url(self, number: int) -> str:
        params = [p for p in (self.query, "" if number == 1 else f"page={number}") if p]
        return self.root + self.path + ("?" + "&".join(params) if params else "")

    def paging_links(self) -> list[tuple[str, str]]:
        """RFC 5005 section 3 links; none when everything fits on one page."""
        if self.last_page <= 1:
            return []
        links = [("first", self.page_url(1)), ("last", self.page_url(self.last_page))]
        if self.page > 1:
            links.append(("previous", self.page_url(self.page - 1)))
        if self.page < self.last_page:
            links.append(("next", self.page_url(self.page + 1)))
        return links

    def article_url(self, draft: DraftView) -> str:
        return self.root + article_path(draft.id, draft.target_language, self.main_language)

    def alternates(self, draft: DraftView) -> list[tuple[str, str]]:
        """(language, URL) of the draft's translations into the other languages."""
        return [
            (language, self.root + path)
            for language, path in alternate_paths(draft, self.translations, self.main_language)
        ]


EntryLink = Callable[[DraftView], str]


def alternate_paths(
    draft: DraftView, translations: Mapping[int, Mapping[str, int]], main_language: str
) -> list[tuple[str, str]]:
    """(language, path) of the published translations of the draft's article into its
    other languages; ``translations`` is ``Store.translations_published``."""
    others = translations.get(draft.entry_id, {})
    return [
        (language, article_path(draft_id, language, main_language))
        for language, draft_id in sorted(others.items())
        if draft_id != draft.id
    ]


# ---------------------------------------------------------------- credit and ids


def article_html(draft: DraftView) -> str:
    """Body as published: sanitized again at render time, then the credit line."""
    return sanitize(draft.body_html) + credit_html(draft)


def tag_uri(base_url: str, created: datetime, specific: str) -> str:
    """Stable entry ids (RFC 4151) owned by this site, never the source's id."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{created.astimezone(UTC):%Y-%m-%d}:{specific}"


def entry_id(channel: Channel, draft: DraftView, *, review: bool = False) -> str:
    suffix = "/review" if review else ""
    return tag_uri(channel.base_url, draft.created_at, f"draft/{draft.id}{suffix}")


def feed_updated(drafts: Sequence[DraftView]) -> datetime:
    moments = [d.updated_at for d in drafts]
    return max(moments) if moments else EMPTY_FEED_UPDATED


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC, with the microseconds when the moment has any: two articles
    approved within one second keep distinct ``atom:updated`` values (RFC 3339 section 5.6
    allows fractions; the W3C validator accepts them and warns on equal values). RSS
    ``pubDate`` (RFC 822) has no fractions, and no rule against equal values."""
    utc = moment.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def author_name(draft: DraftView) -> str:
    return draft.author or source_name(draft)


def summary_text(draft: DraftView) -> str:
    # A space after each block, or its text runs into the next block's.
    text = text_of(_BLOCK_END.sub(r"\1 ", sanitize(draft.body_html)))
    if len(text) <= SUMMARY_CHARACTERS:
        return text
    return text[:SUMMARY_CHARACTERS].rsplit(" ", 1)[0] + " …"


def xml_text(value: str) -> str:
    return plain_text(_NOT_XML.sub("", value))


# ---------------------------------------------------------------- Atom (RFC 4287)


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, ns: str = ATOM, **attrs: str
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def atom_feed(
    channel: Channel,
    drafts: Sequence[DraftView],
    *,
    entry_link: EntryLink | None = None,
    review: bool = False,
) -> bytes:
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})  # type: ignore[dict-item]
    root.set(XML_LANG, channel.language)
    _sub(root, "id", channel.feed_id)
    _sub(root, "title", channel.title)
    if channel.subtitle:
        _sub(root, "subtitle", channel.subtitle)
    _sub(root, "updated", rfc3339(feed_updated(drafts)))
    # Every entry names its original author; the site is the author of the feed itself.
    _sub(_sub(root, "author"), "name", channel.title)
    _sub(root, "link", rel="self", type=ATOM_TYPE, href=channel.self_url)
    _sub(root, "link", rel="alternate", type="text/html", href=channel.home_url)
    hub_url = safe_http_url(channel.hub_url)
    if hub_url:
        _sub(root, "link", rel="hub", href=hub_url)
    for rel, href in channel.paging_links():
        _sub(root, "link", rel=rel, type=ATOM_TYPE, href=href)
    _sub(root, "generator", "aggregator", version=__version__)
    link = entry_link or channel.article_url
    for draft in drafts:
        _atom_entry(root, channel, draft, link(draft), review=review)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def _atom_entry(
    root: etree._Element, channel: Channel, draft: DraftView, href: str, *, review: bool
) -> None:
    entry = _sub(root, "entry")
    entry.set(XML_LANG, draft.target_language)
    _sub(entry, "id", entry_id(channel, draft, review=review))
    _sub(entry, "title", draft.title, type="text")
    alternates = [] if review else channel.alternates(draft)
    if alternates:  # one alternate per language (RFC 4287 4.2.7.2), each saying which
        _sub(entry, "link", rel="alternate", type="text/html", hreflang=draft.target_language,
             href=href)  # fmt: skip
        for language, url in alternates:
            _sub(entry, "link", rel="alternate", type="text/html", hreflang=language, href=url)
    else:
        _sub(entry, "link", rel="alternate", type="text/html", href=href)
    original_url = safe_http_url(draft.original_url)
    if original_url:
        _sub(entry, "link", rel="via", type="text/html", href=original_url)
    _sub(entry, "published", rfc3339(draft.approved_at or draft.created_at))
    _sub(entry, "updated", rfc3339(draft.updated_at))
    _sub(_sub(entry, "author"), "name", author_name(draft))
    _sub(entry, "content", article_html(draft), type="html")
    source = _sub(entry, "source")
    feed_url = safe_http_url(draft.feed_url)
    # atom:source SHOULD carry an id: a feed without a web address gets one of ours.
    source_id = feed_url or tag_uri(channel.base_url, FEED_ID_DATE, f"/sources/{draft.feed_slug}")
    _sub(source, "id", source_id)
    _sub(source, "title", source_name(draft))
    if feed_url:
        _sub(source, "link", rel="self", href=feed_url)
    site_url = safe_http_url(draft.feed_site_url)
    if site_url:
        _sub(source, "link", rel="alternate", type="text/html", href=site_url)
    _sub(source, "updated", rfc3339(draft.feed_updated_at or draft.created_at))


# ---------------------------------------------------------------- RSS 2.0


def rss_feed(channel: Channel, drafts: Sequence[DraftView]) -> bytes:
    nsmap = {"atom": ATOM, "dc": DC, "content": CONTENT}
    root = etree.Element("rss", nsmap=nsmap)
    root.set("version", "2.0")
    rss = etree.SubElement(root, "channel")
    _plain(rss, "title", channel.title)
    _plain(rss, "link", channel.home_url)
    _plain(rss, "description", channel.subtitle or channel.title)
    _plain(rss, "language", channel.language)
    _sub(rss, "link", rel="self", type=RSS_TYPE, href=channel.self_url)
    hub_url = safe_http_url(channel.hub_url)
    if hub_url:
        _sub(rss, "link", rel="hub", href=hub_url)
    for rel, href in channel.paging_links():
        _sub(rss, "link", rel=rel, type=RSS_TYPE, href=href)
    _plain(rss, "lastBuildDate", format_datetime(feed_updated(drafts), usegmt=True))
    _plain(rss, "generator", f"aggregator {__version__}")
    for draft in drafts:
        item = etree.SubElement(rss, "item")
        _plain(item, "title", draft.title)
        _plain(item, "link", channel.article_url(draft))
        _plain(item, "guid", entry_id(channel, draft)).set("isPermaLink", "false")
        published = draft.approved_at or draft.created_at
        _plain(item, "pubDate", format_datetime(published.astimezone(UTC), usegmt=True))
        _sub(item, "creator", author_name(draft), ns=DC)
        _plain(item, "description", summary_text(draft))
        _sub(item, "encoded", article_html(draft), ns=CONTENT)
        # RSS 2.0: <source> must carry a url; without a web one there is no <source>.
        feed_url = safe_http_url(draft.feed_url)
        if feed_url:
            _plain(item, "source", source_name(draft)).set("url", xml_text(feed_url))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def _plain(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = xml_text(text)
    return element


# ---------------------------------------------------------------- JSON Feed 1.1


def json_feed(channel: Channel, drafts: Sequence[DraftView]) -> bytes:
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": plain_text(channel.title),
        "home_page_url": channel.home_url,
        "feed_url": channel.self_url,
        "description": channel.subtitle or channel.title,
        "language": channel.language,
        "authors": [{"name": channel.title, "url": channel.home_url}],
    }
    hub_url = safe_http_url(channel.hub_url)
    if hub_url:
        feed["hubs"] = [{"type": "WebSub", "url": hub_url}]
    next_link = dict(channel.paging_links()).get("next")
    if next_link:
        feed["next_url"] = next_link
    feed["items"] = [_json_item(channel, draft) for draft in drafts]
    return json.dumps(feed, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def _json_item(channel: Channel, draft: DraftView) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry_id(channel, draft),
        "url": channel.article_url(draft),
        "title": plain_text(draft.title),
        "content_html": article_html(draft),
        "summary": summary_text(draft),
        "date_published": rfc3339(draft.approved_at or draft.created_at),
        "date_modified": rfc3339(draft.updated_at),
        "authors": [{"name": plain_text(author_name(draft))}],
        "language": draft.target_language,
    }
    original_url = safe_http_url(draft.original_url)
    if original_url:
        item["external_url"] = original_url
    source: dict[str, Any] = {"title": plain_text(source_name(draft))}
    feed_url = safe_http_url(draft.feed_url)
    if feed_url:
        source["feed_url"] = feed_url
    source["original_title"] = plain_text(draft.original_title)
    site_url = safe_http_url(draft.feed_site_url)
    if site_url:
        source["home_page_url"] = site_url
    if original_url:
        source["original_url"] = original_url
    item["_source"] = source
    return item


FORMATS: dict[str, tuple[str, Callable[[Channel, Sequence[DraftView]], bytes]]] = {
    "atom": (ATOM_TYPE, atom_feed),
    "rss": (RSS_TYPE, rss_feed),
    "json": (JSON_FEED_TYPE, json_feed),
}
