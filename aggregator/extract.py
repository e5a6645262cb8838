"""Article HTML -> clean, sanitized HTML + metadata. Pure: never fetches.

trafilatura is given the page's HTML and its URL; what comes out is sanitized with an
allowlist (nh3) after every URL is made absolute. The sanitizer always runs last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape as html_escape
from urllib.parse import urlsplit

import lxml.html
import nh3
import trafilatura
from lxml import etree

from aggregator.boilerplate import remove_boilerplate
from aggregator.errors import ExtractError

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "details",
    "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time",
    "tr", "u", "ul", "var",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "ol": {"start"},
    "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"}, "h5": {"id"}, "h6": {"id"},
}  # fmt: skip
URL_SCHEMES = {"http", "https", "mailto"}

# Ghost and Substack say so in the page (or the feed's content) when a post is for paying
# members only: Ghost with its upgrade call-to-action and the members-only card marker,
# Substack with its paywall block and "keep reading with a free trial".
_PAYWALL_MARKERS = (
    (
        re.compile(
            r"class=\"[^\"]*\bgh-post-upgrade-cta\b|This post is for (?:paying |paid )?"
            r"(?:subscribers|members)(?: on the [^<]{1,60} tiers?)? only",
            re.I,
        ),
        "Ghost",
    ),
    (re.compile(r"<!--\s*members-only\s*-->", re.I), "Ghost"),
    (
        re.compile(
            r"This post is for paid subscribers|class=\"(?:[^\"]*\s)?paywall(?:-[\w-]+)?[\s\"]|"
            r"data-testid=\"paywall\"|Keep reading with a \d+-day free trial|"
            r"to keep reading this post and get \d+ days of free access",
            re.I,
        ),
        "Substack",
    ),
)
_WORD = re.compile(r"\w+", re.UNICODE)
FULL_TEXT_MIN_WORDS = 150


@dataclass(frozen=True)
class Article:
    html: str  # sanitized fragment, URLs absolute
    title: str | None = None
    author: str | None = None


def sanitize(html: str, base_url: str | None = None) -> str:
    """Allowlist sanitizer; relative URLs are made absolute first (against base_url)."""
    if base_url:
        html = absolutize(html, base_url)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
        attribute_filter=_drop_unsafe_cite,
    ).strip()


def _drop_unsafe_cite(element: str, attribute: str, value: str) -> str | None:
    """nh3 checks the scheme of href and src, not of cite: a javascript: cite goes here."""
    if attribute != "cite":
        return value
    scheme = urlsplit("".join(value.split())).scheme.lower()
    return value if not scheme or scheme in URL_SCHEMES else None


def absolutize(html: str, base_url: str) -> str:
    if not html.strip():
        return html
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return html
    root.make_links_absolute(base_url, resolve_base_href=True, handle_failures="discard")
    return _inner_html(root)


def _inner_html(element: etree._Element) -> str:
    """The element's content as HTML, without the element itself."""
    children = "".join(etree.tostring(c, encoding="unicode", method="html") for c in element)
    return html_escape(element.text or "", quote=False) + children


def text_of(html: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    if not html or not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    for bad in root.iter("script", "style"):
        bad.drop_tree()
    return re.sub(r"\s+", " ", root.text_content()).strip()


def word_count(html: str) -> int:
    return len(_WORD.findall(text_of(html)))


def paywall_reason(html: str | None) -> str | None:
    """Why this page or content is only a members-only preview, or None."""
    if not html:
        return None
    for marker, platform in _PAYWALL_MARKERS:
        if marker.search(html):
            return (
                f"members-only post ({platform} paywall): only a preview is public, "
                "so it is not translated"
            )
    return None


def feed_content_is_full(content_html: str | None, summary_html: str | None) -> bool:
    """Is the feed's own content the whole article, so that no page fetch is needed?

    Ghost, Substack and WordPress put the full post in content:encoded; an excerpt-only feed
    has only a short description, often ending in an ellipsis or a "read more" link.
    """
    if not content_html:
        return False
    if paywall_reason(content_html):
        return False
    words = word_count(content_html)
    if words < FULL_TEXT_MIN_WORDS:
        return False
    tail = text_of(content_html)[-80:].lower()
    if (
        tail.endswith(("…", "...", "[…]", "[...]"))
        or "read more" in tail
        or "continue reading" in tail
    ):
        return False
    return not (summary_html and word_count(summary_html) >= words)


def extract_article(page_html: str | bytes, url: str) -> Article:
    """Main content of an article page as sanitized HTML (links, formatting, images kept)."""
    extracted = trafilatura.extract(
        page_html,
        url=url,
        output_format="html",
        include_comments=False,
        include_links=True,
        include_images=True,
        include_formatting=True,
        include_tables=True,
        favor_precision=False,
    )
    if not extracted:
        raise ExtractError(f"{url}: no article text found in the page")
    body = remove_boilerplate(_body_of(extracted))
    html = sanitize(body, url)
    if not text_of(html):
        raise ExtractError(f"{url}: the extracted article is empty")
    metadata = trafilatura.extract_metadata(page_html, default_url=url)
    return Article(
        html=html,
        title=getattr(metadata, "title", None) if metadata else None,
        author=getattr(metadata, "author", None) if metadata else None,
    )


def _body_of(document: str) -> str:
    """The body of trafilatura's HTML, with its inline code kept inline.

    trafilatura renders every code element as ``<pre>``, and an HTML parser then closes the
    paragraph at that ``<pre>``: the rest of the sentence falls outside any block. Its output
    is well-formed XML, so it is read as XML and a ``pre`` inside running text becomes the
    ``code`` it was.
    """
    try:
        root = etree.fromstring(document.encode("utf-8"), etree.XMLParser(recover=False))
    except etree.XMLSyntaxError:
        root = lxml.html.document_fromstring(document)
    body = root.find("body")
    container = body if body is not None else root
    for pre in list(container.iter("pre")):
        parent = pre.getparent()
        in_text = parent is not None and parent is not container and parent.tag in _INLINE_HOSTS
        if in_text or ("\n" not in (pre.text or "") and (pre.tail or "").strip()):
            pre.tag = "code"
    return _inner_html(container)


_INLINE_HOSTS = {
    "p", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "a", "b", "i", "u", "em",
    "strong", "span", "del", "sub", "sup", "figcaption", "dd", "dt", "q", "cite",
}  # fmt: skip
