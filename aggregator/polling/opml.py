"""OPML in and out: subscriptions from another feed reader, and ours for one. Pure."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from aggregator.config import FeedSettings
from aggregator.errors import OpmlError
from aggregator.polling.parse import strip_entity_declarations


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    name: str
    category: str = ""  # the folders it sat in, "Tech / Newsletters"
    site_url: str = ""


def read_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """Every feed outline (one with an xmlUrl) of an OPML document, folders flattened.

    Outlines without an http(s) xmlUrl and repeated URLs are skipped.
    """
    cleaned = strip_entity_declarations(data)
    if b"<!ENTITY" in cleaned.upper():
        raise OpmlError(f"{source}: refused, the file declares XML entities")
    try:
        root = ElementTree.fromstring(cleaned)  # noqa: S314 - entity declarations removed above
    except ElementTree.ParseError as exc:
        raise OpmlError(f"{source}: not a readable OPML file ({exc})") from None
    if root.tag.lower() != "opml":
        raise OpmlError(f"{source}: not an OPML file (its root element is <{root.tag}>)")
    body = next((child for child in root if child.tag.lower() == "body"), None)
    if body is None:
        raise OpmlError(f"{source}: the OPML file has no <body>")
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()
    for outline, folders in _outlines(body, ()):
        url = _attribute(outline, "xmlUrl").strip()
        if not url or url in seen or urlsplit(url).scheme not in ("http", "https"):
            continue
        seen.add(url)
        name = _attribute(outline, "title") or _attribute(outline, "text")
        feeds.append(
            OpmlFeed(
                url=url,
                name=name.strip(),
                category=" / ".join(folders),
                site_url=_attribute(outline, "htmlUrl").strip(),
            )
        )
    if not feeds:
        raise OpmlError(f"{source}: no feed found (no outline with an http(s) xmlUrl)")
    return feeds


def _outlines(
    parent: ElementTree.Element, folders: tuple[str, ...]
) -> Iterator[tuple[ElementTree.Element, tuple[str, ...]]]:
    for child in parent:
        if child.tag.lower() != "outline":
            continue
        yield child, folders
        label = (_attribute(child, "title") or _attribute(child, "text")).strip()
        inner = (*folders, label) if label and not _attribute(child, "xmlUrl") else folders
        yield from _outlines(child, inner)


def _attribute(element: ElementTree.Element, name: str) -> str:
    """An attribute by name, whatever its case (exporters write xmlUrl, xmlurl, XMLURL)."""
    wanted = name.lower()
    for key, value in element.attrib.items():
        if key.lower() == wanted:
            return value
    return ""


def same_feed_url(url: str) -> str:
    """A feed URL as compared for "already configured": scheme, case of the host, a
    default port and a trailing slash do not make another feed."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and port != {"http": 80, "https": 443}.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return f"{host}{parts.path.rstrip('/') or '/'}?{parts.query}"


def new_feeds(
    found: Iterable[OpmlFeed], configured: Iterable[str]
) -> tuple[list[OpmlFeed], list[OpmlFeed]]:
    """(feeds to add, feeds skipped) given the URLs already followed: those written in
    config.toml and those that polling discovered or was redirected to for them."""
    known = {same_feed_url(url) for url in configured}
    fresh: list[OpmlFeed] = []
    skipped: list[OpmlFeed] = []
    for feed in found:
        (skipped if same_feed_url(feed.url) in known else fresh).append(feed)
    return fresh, skipped


def feeds_toml(feeds: Iterable[OpmlFeed]) -> str:
    """``[[feeds]]`` tables to append to config.toml."""
    blocks = []
    for feed in feeds:
        lines = []
        if feed.category:
            lines.append(f"# {feed.category}")
        lines += ["[[feeds]]", f"url = {_toml_string(feed.url)}"]
        if feed.name:
            lines.append(f"name = {_toml_string(feed.name)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string: same quotes, same escapes.
    return json.dumps(value, ensure_ascii=False)


def write_opml(
    feeds: Sequence[FeedSettings],
    *,
    now: datetime,
    titles: dict[str, str] | None = None,
    sites: dict[str, str] | None = None,
    feed_urls: dict[str, str] | None = None,
) -> str:
    """OPML 2.0 of the configured feeds; ``titles``, ``sites`` and ``feed_urls`` (by config
    URL) add what polling learnt: the feed's own title, its web site, and the feed's own URL
    where config.toml names a web page whose feed was discovered (or that moved)."""
    titles, sites, feed_urls = titles or {}, sites or {}, feed_urls or {}
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = "aggregator feeds"
    ElementTree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = ElementTree.SubElement(root, "body")
    for feed in feeds:
        attributes = {
            "type": "rss",
            "text": feed.name or titles.get(feed.url) or feed.url,
            "title": feed.name or titles.get(feed.url) or feed.url,
            "xmlUrl": feed_urls.get(feed.url) or feed.url,
        }
        if sites.get(feed.url):
            attributes["htmlUrl"] = sites[feed.url]
        ElementTree.SubElement(body, "outline", attributes)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="unicode"
    )
