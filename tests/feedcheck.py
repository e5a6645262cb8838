"""The W3C feed validator's rules that bite, as plain checks on feed bytes.

Each function returns the list of problems found, worded like the validator's messages
(an empty list means the feed would validate on these points): the self link and the
document's own URL, ids (``tag:`` URIs as RFC 4151 and the validator read them, unique),
dates (RFC 3339 in Atom and JSON Feed, RFC 822 in RSS), authors, RSS ``guid`` and its
``isPermaLink``, ``source`` with its ``url``, and JSON Feed 1.1's required members.

Also the validator's warnings (a feed with a warning does not pass here either):
DuplicateUpdated (two Atom entries with the same ``atom:updated`` text), DuplicateAtomLink
(two links with the same rel, type and hreflang in one element), SelfDoesntMatchLocation,
ContainsRelRef (a relative URL in RSS ``description`` or ``content:encoded``),
NeedDescriptionBeforeContent, DuplicateItemSemantics (``author`` beside ``dc:creator``),
SecurityRisk / SecurityRiskAttr / DangerousStyleAttr (script-like tags, ``on…`` and
``style`` attributes in escaped HTML), and, for what a server sends, UnexpectedContentType
and EncodingMismatch (``served_problems``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import lxml.html
from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# feedvalidator's tag URI pattern (validators.py, class "tag"), with the host part as
# RFC 4151's DNSname.
TAG_URI = re.compile(
    r"^tag:([a-z0-9\-._]+?@)?[a-z0-9.\-]+?,\d{4}(-\d{2}(-\d{2})?)?:"
    r"[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*(#[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*)?$"
)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} (GMT|[+-]\d{4})$"
)
ATOM_LINK_RELS = {"alternate", "self", "via", "related", "enclosure", "hub"} | {
    "first", "last", "next", "previous",
}  # fmt: skip
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
# feedvalidator's unsafe elements in escaped HTML (SecurityRisk) and its media types.
UNSAFE_TAGS = {
    "applet", "blink", "embed", "frame", "frameset", "iframe", "link", "meta", "object",
    "script", "style", "base",
}  # fmt: skip
URL_ATTRIBUTES = {"href", "src", "cite", "action", "longdesc", "poster", "background"}
FEED_MEDIA_TYPES = {
    "atom": {"application/atom+xml", "application/xml"},
    "rss": {"application/rss+xml", "application/xml"},
    "json": {"application/feed+json", "application/json"},
}


def _is_url(value: str | None) -> bool:
    parts = urlsplit(value or "")
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _dates(value: str | None, where: str, problems: list[str]) -> datetime | None:
    if value is None or not RFC3339.match(value):
        problems.append(f"{where}: date must be an RFC-3339 date-time, got {value!r}")
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def html_problems(html: str | None, where: str, *, relative: bool = False) -> list[str]:
    """SecurityRisk, SecurityRiskAttr, DangerousStyleAttr and (``relative``) ContainsRelRef
    on one escaped-HTML value."""
    if not html or not html.strip():
        return []
    problems: list[str] = []
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag in UNSAFE_TAGS:
            problems.append(f"{where} should not contain {element.tag} tag")
        for name, value in element.attrib.items():
            if name.lower().startswith("on"):
                problems.append(f"{where} should not contain {name} attribute")
            elif name.lower() == "style":
                problems.append(f"{where}: style attribute contains potentially dangerous content")
            elif relative and name.lower() in URL_ATTRIBUTES and not urlsplit(value).scheme:
                problems.append(f"{where} should not contain relative URL references: {value!r}")
    return problems


def _duplicate_links(element: etree._Element, where: str) -> list[str]:
    """DuplicateAtomLink: one link per rel, type and hreflang in a feed, entry or source."""
    seen: set[tuple[str, str | None, str | None]] = set()
    problems = []
    for link in element.findall(f"{ATOM}link"):
        key = (link.get("rel", "alternate"), link.get("type"), link.get("hreflang"))
        if key in seen:
            problems.append(f"{where}: duplicate link with the same type and rel {key}")
        seen.add(key)
    return problems


def served_problems(fmt: str, content_type: str, body: bytes) -> list[str]:
    """UnexpectedContentType and EncodingMismatch: what the server says of the bytes."""
    media_type, _, parameters = content_type.partition(";")
    problems = []
    if media_type.strip().lower() not in FEED_MEDIA_TYPES[fmt]:
        problems.append(f"Feeds should not be served with the {media_type.strip()!r} media type")
    charset = parameters.strip().lower().removeprefix("charset=") if parameters else ""
    if fmt != "json":
        declared = re.match(rb'<\?xml[^>]*encoding=["\']([A-Za-z0-9._-]+)["\']', body)
        encoding = declared.group(1).decode().lower() if declared else "utf-8"
        if not charset:
            problems.append("No character encoding was specified in the Content-Type")
        elif charset != encoding:
            problems.append(
                f"Your feed appears to be encoded as {encoding!r}, but your server is "
                f"reporting {charset!r}"
            )
    return problems


def atom_problems(body: bytes, location: str) -> list[str]:
    problems: list[str] = []
    root = etree.fromstring(body)
    if root.tag != f"{ATOM}feed":
        return [f"root element is {root.tag}, not atom:feed"]
    if not LANGUAGE.match(root.get(XML_LANG) or ""):
        problems.append(f"feed: invalid xml:lang {root.get(XML_LANG)!r}")
    for name in ("id", "title", "updated"):
        if len(root.findall(f"{ATOM}{name}")) != 1:
            problems.append(f"feed: must contain exactly one atom:{name}")
    feed_id = root.findtext(f"{ATOM}id") or ""
    if not TAG_URI.match(feed_id):
        problems.append(f"feed: id is not a valid tag URI: {feed_id!r}")
    _dates(root.findtext(f"{ATOM}updated"), "feed updated", problems)
    selfs = [link for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]
    if len(selfs) != 1:
        problems.append('feed: missing atom:link with rel="self"')
    elif selfs[0].get("href") != location:
        problems.append(
            f"feed: self reference doesn't match document location "
            f"({selfs[0].get('href')} != {location})"
        )
    elif selfs[0].get("type") != "application/atom+xml":
        problems.append("feed: self link type should be application/atom+xml")
    for link in root.iter(f"{ATOM}link"):
        if link.get("rel", "alternate") not in ATOM_LINK_RELS:
            problems.append(f"unregistered link relationship {link.get('rel')!r}")
        if not _is_url(link.get("href")):
            problems.append(f"link href is not an absolute http(s) URL: {link.get('href')!r}")
    problems += _duplicate_links(root, "feed")
    feed_has_author = bool(root.findall(f"{ATOM}author/{ATOM}name"))
    ids: set[str] = set()
    updated_values: set[str] = set()
    for n, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry {n}"
        for name in ("id", "title", "updated"):
            if len(entry.findall(f"{ATOM}{name}")) != 1:
                problems.append(f"{where}: must contain exactly one atom:{name}")
        entry_id = entry.findtext(f"{ATOM}id") or ""
        if not TAG_URI.match(entry_id):
            problems.append(f"{where}: id is not a valid tag URI: {entry_id!r}")
        if entry_id in ids:
            problems.append(f"{where}: duplicate entry id {entry_id}")
        ids.add(entry_id)
        updated_text = entry.findtext(f"{ATOM}updated") or ""
        updated = _dates(updated_text or None, f"{where} updated", problems)
        if updated_text in updated_values:
            problems.append(
                f"{where}: two entries with the same value for atom:updated ({updated_text})"
            )
        updated_values.add(updated_text)
        problems += _duplicate_links(entry, where)
        if entry.find(f"{ATOM}published") is not None:
            published = _dates(entry.findtext(f"{ATOM}published"), f"{where} published", problems)
            if updated and published and published > updated:
                problems.append(f"{where}: published is later than updated")
        names = [a.findtext(f"{ATOM}name") for a in entry.findall(f"{ATOM}author")]
        if not feed_has_author and not names:
            problems.append(f"{where}: missing atom:author (and the feed has none)")
        if any(not (name or "").strip() for name in names):
            problems.append(f"{where}: author without a name")
        alternates = [
            link
            for link in entry.findall(f"{ATOM}link")
            if link.get("rel", "alternate") == "alternate"
        ]
        content = entry.find(f"{ATOM}content")
        if not alternates and content is None:
            problems.append(f"{where}: needs content or a link rel=alternate")
        if content is not None and content.get("type") not in ("text", "html", "xhtml"):
            problems.append(f"{where}: content type {content.get('type')!r}")
        if content is not None and content.get("type") == "html":
            problems += html_problems(content.text, f"{where} content")
        source = entry.find(f"{ATOM}source")
        if source is not None:
            for name in ("id", "title", "updated"):
                if source.find(f"{ATOM}{name}") is None:
                    problems.append(f"{where}: atom:source should carry atom:{name}")
            _dates(source.findtext(f"{ATOM}updated"), f"{where} source updated", problems)
    return problems


def rss_problems(body: bytes, location: str) -> list[str]:
    problems: list[str] = []
    root = etree.fromstring(body)
    if root.tag != "rss" or root.get("version") != "2.0":
        return ['root element must be <rss version="2.0">']
    channel = root.find("channel")
    if channel is None:
        return ["missing channel"]
    for name in ("title", "link", "description"):
        if not (channel.findtext(name) or "").strip():
            problems.append(f"channel: missing {name}")
    if not LANGUAGE.match(channel.findtext("language") or ""):
        problems.append("channel: invalid language")
    selfs = [k for k in channel.findall(f"{ATOM}link") if k.get("rel") == "self"]
    if len(selfs) != 1:
        problems.append('channel: missing atom:link with rel="self"')
    elif selfs[0].get("href") != location:
        problems.append("channel: self reference doesn't match document location")
    elif selfs[0].get("type") != "application/rss+xml":
        problems.append("channel: self link type should be application/rss+xml")
    for name in ("lastBuildDate", "pubDate"):
        value = channel.findtext(name)
        if value is not None and not RFC822.match(value):
            problems.append(f"channel: {name} must be an RFC-822 date-time, got {value!r}")
    guids: set[str] = set()
    for n, item in enumerate(channel.findall("item")):
        where = f"item {n}"
        if item.find("title") is None and item.find("description") is None:
            problems.append(f"{where}: must contain title or description")
        guid = item.find("guid")
        if guid is None:
            problems.append(f"{where}: missing guid")
        else:
            permalink = guid.get("isPermaLink", "true")
            if permalink == "true" and not _is_url(guid.text):
                problems.append(
                    f"{where}: guid must be a full URL, unless isPermaLink attribute is false"
                )
            if guid.text in guids:
                problems.append(f"{where}: duplicate guid {guid.text}")
            guids.add(guid.text or "")
        pub_date = item.findtext("pubDate")
        if pub_date is None or not RFC822.match(pub_date):
            problems.append(f"{where}: pubDate must be an RFC-822 date-time, got {pub_date!r}")
        else:
            parsedate_to_datetime(pub_date)
        if not _is_url(item.findtext("link")):
            problems.append(f"{where}: link must be a full URL")
        author = item.findtext("author")
        if author is not None and "@" not in author:
            problems.append(f"{where}: author must be an email address (use dc:creator)")
        if not (item.findtext(DC_CREATOR) or "").strip():
            problems.append(f"{where}: no dc:creator")
        source = item.find("source")
        if source is not None and not _is_url(source.get("url")):
            problems.append(f"{where}: source must have a url attribute with a full URL")
        if item.find("author") is not None and item.find(DC_CREATOR) is not None:
            problems.append(f"{where}: an item should not include both author and dc:creator")
        tags = [child.tag for child in item]
        if CONTENT_ENCODED in tags and (
            "description" not in tags or tags.index("description") > tags.index(CONTENT_ENCODED)
        ):
            problems.append(f"{where}: ensure description precedes content:encoded")
        for name in ("description", CONTENT_ENCODED):
            label = "content:encoded" if name == CONTENT_ENCODED else name
            problems += html_problems(item.findtext(name), f"{where} {label}", relative=True)
    return problems


def json_feed_problems(body: bytes, location: str) -> list[str]:
    problems: list[str] = []
    feed: dict[str, Any] = json.loads(body)
    if feed.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(
            f"version must be https://jsonfeed.org/version/1.1, got {feed.get('version')!r}"
        )
    if not isinstance(feed.get("title"), str) or not feed["title"]:
        problems.append("title is required")
    if feed.get("feed_url") != location:
        problems.append(f"feed_url {feed.get('feed_url')!r} is not the document's URL {location}")
    if not _is_url(feed.get("home_page_url")):
        problems.append("home_page_url should be a full URL")
    if not isinstance(feed.get("items"), list):
        return [*problems, "items is required and must be an array"]
    ids: set[str] = set()
    for n, item in enumerate(feed["items"]):
        where = f"item {n}"
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"{where}: id is required and must be a string")
        if item.get("id") in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(item.get("id"))
        if not item.get("content_html") and not item.get("content_text"):
            problems.append(f"{where}: content_html or content_text is required")
        for name in ("date_published", "date_modified"):
            if name in item:
                _dates(item[name], f"{where} {name}", problems)
        authors = item.get("authors")
        if not isinstance(authors, list) or not all(
            isinstance(a, dict) and a.get("name") for a in authors
        ):
            problems.append(f"{where}: authors must be an array of objects with a name")
        for key in item:
            if key not in JSON_ITEM_KEYS and not re.match(r"^_[A-Za-z]", key):
                problems.append(f"{where}: unknown member {key!r} (extensions start with _)")
    return problems


JSON_ITEM_KEYS = {
    "id", "url", "external_url", "title", "content_html", "content_text", "summary", "image",
    "banner_image", "date_published", "date_modified", "authors", "tags", "language",
    "attachments",
}  # fmt: skip
CHECKS = {"atom": atom_problems, "rss": rss_problems, "json": json_feed_problems}
