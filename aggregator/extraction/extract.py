"""Article HTML -> clean, sanitized HTML + metadata. Pure: never fetches.

trafilatura is given the page's HTML and its URL; what comes out is sanitized with an
allowlist (nh3) after every URL is made absolute. The sanitizer always runs last. A feed
may name its article in the page itself (``selector``, CSS) instead of trafilatura's guess,
and the site's own blocks to leave out (``remove``): ``select_article`` and
``without_elements``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import lxml.html
import nh3
from lxml import etree

from aggregator.errors import ExtractError
from aggregator.extraction.boilerplate import remove_boilerplate
from aggregator.extraction.fragment import inner_html
from aggregator.untrusted import plain_text, same_site

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
# Footnotes and their back-references are fragment links (href="#fn1") to ids on these
# (markdown-it's sup/li, Substack's a, Ghost's p): the ids are kept, as headings' are.
for _tag in ("a", "sup", "li", "p", "ol", "ul", "span", "dt", "dd", "figure", "blockquote"):
    ALLOWED_ATTRIBUTES.setdefault(_tag, set()).add("id")
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
# trafilatura is not safe across threads: it evaluates XPath objects compiled once at import,
# and two pages extracted at once crashed the process (a segmentation fault, or glibc's
# "corrupted size vs. prev_size"; adbar/trafilatura#840 and #925). Pages are read one at a
# time in a process; the entries in flight still fetch and translate side by side.
_TRAFILATURA = threading.Lock()


@dataclass(frozen=True)
class Article:
    html: str  # sanitized fragment, URLs absolute
    title: str | None = None
    author: str | None = None


def sanitize(
    html: str,
    base_url: str | None = None,
    *,
    image_src: Callable[[str], str | None] | None = None,
) -> str:
    """Allowlist sanitizer; relative URLs are made absolute first (against base_url).

    Control and bidi override characters go first (``untrusted.plain_text``): a NUL, or a
    U+202E that turns the rest of a paragraph around, is never content. ``image_src``, if
    given, rewrites every ``<img src>`` (None drops it): the review desk shows images
    through its own route.
    """
    html = plain_text(html)
    if base_url:
        html = absolutize(html, base_url)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
        attribute_filter=_drop_unsafe_cite if image_src is None else _images_to(image_src),
    ).strip()


def _images_to(image_src: Callable[[str], str | None]) -> Callable[[str, str, str], str | None]:
    def check(element: str, attribute: str, value: str) -> str | None:
        if element == "img" and attribute == "src":
            return image_src(value)
        return _drop_unsafe_cite(element, attribute, value)

    return check


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
    return inner_html(root)


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
    import trafilatura  # a fifth of a second to import: only where a page is read

    with _TRAFILATURA:
        # Links, images, formatting and tables are the article too; comments are not.
        extracted = trafilatura.extract(
            page_html, url=url, output_format="html", include_comments=False,
            include_links=True, include_images=True, include_formatting=True,
            include_tables=True, favor_precision=False,
        )  # fmt: skip
        metadata = trafilatura.extract_metadata(page_html, default_url=url) if extracted else None
    if not extracted:
        raise ExtractError(f"{url}: no article text found in the page")
    return Article(
        html=_cleaned(_body_of(extracted), url, page_html),
        title=getattr(metadata, "title", None) if metadata else None,
        author=getattr(metadata, "author", None) if metadata else None,
    )


def select_article(page_html: str | bytes, url: str, selector: str) -> Article:
    """The first element of the page that the CSS ``selector`` matches, as the article,
    cleaned as trafilatura's output is (boilerplate, sanitizer, links inside the article).

    For a site whose article trafilatura guesses wrong: the feed's ``selector`` says where
    it is. No match is an ExtractError naming the selector and the page.
    """
    matches = _matching(_document(page_html), selector)
    if not matches:
        raise ExtractError(f"{url}: the feed's selector {selector!r} matches nothing in the page")
    chosen = lxml.html.tostring(matches[0], encoding="unicode", with_tail=False)
    # A page's own markup holds texts in bare divs, which the sanitizer does not keep.
    return Article(html=_cleaned(restructure_cards(chosen), url, page_html))


def without_elements(html: str | bytes, selectors: Sequence[str]) -> str | bytes:
    """The page (or feed content) without the elements any of the CSS ``selectors``
    matches: a site's own boilerplate, named by the feed's ``remove``. Unchanged when there
    is none to remove."""
    if not selectors:
        return html
    fragment = isinstance(html, str) and not re.match(r"\s*(<!doctype|<html)", html, re.I)
    if fragment:
        if not html.strip():
            return html
        root = lxml.html.fragment_fromstring(str(html), create_parent="div")
    else:
        root = _document(html)
    for css in selectors:
        for element in _matching(root, css):
            if element.getparent() is not None:  # not the page itself
                element.drop_tree()
    if fragment:
        return inner_html(root)
    return str(lxml.html.tostring(root, encoding="unicode", doctype="<!DOCTYPE html>"))


def _matching(root: lxml.html.HtmlElement, css: str) -> list[lxml.html.HtmlElement]:
    """The elements under ``root`` (itself included) that the CSS selector matches."""
    from lxml.cssselect import CSSSelector  # only where a feed names elements

    found = CSSSelector(css)(root)
    return (
        [e for e in found if isinstance(e, lxml.html.HtmlElement)]
        if isinstance(found, list)
        else []
    )


def _document(page_html: str | bytes) -> lxml.html.HtmlElement:
    """The page parsed; bytes are read as UTF-8 when they are, else as the page says."""
    if isinstance(page_html, bytes):
        try:
            page_html = page_html.decode("utf-8")
        except UnicodeDecodeError:
            return lxml.html.document_fromstring(page_html)
    # lxml refuses a str that declares its encoding in an XML declaration.
    return lxml.html.document_fromstring(re.sub(r"^\s*<\?xml[^>]*>", "", page_html))


def _cleaned(body: str, url: str, page_html: str | bytes) -> str:
    """An article's HTML taken from its page: newsletter boilerplate out, sanitized (last),
    links to places inside the article kept inside it. An empty result is an ExtractError."""
    parts = urlsplit(url)
    html = keep_fragment_links(
        sanitize(remove_boilerplate(body), url),
        (url, f"{parts.scheme}://{parts.netloc}/"),
        fragment_names(page_html),
    )
    if not text_of(html):
        raise ExtractError(f"{url}: the extracted article is empty")
    return html


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
    return inner_html(container)


_INLINE_HOSTS = {
    "p", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "a", "b", "i", "u", "em",
    "strong", "span", "del", "sub", "sup", "figcaption", "dd", "dt", "q", "cite",
}  # fmt: skip


# ---------------------------------------------------------------- the article's own shape


def restructure_cards(html: str) -> str:
    """Feed content whose cards become blocks that are translated and edited one by one.

    Ghost's bookmark card is a link around ``div``s (title, description, site): the
    sanitizer keeps no ``div``, so its texts would run together ("…problemWhy…") into a
    link that is never translated. It becomes a linked title and a description, each a
    paragraph. Any other ``div`` holding only inline content (callout, toggle and embed
    cards, Substack's footnotes) becomes a paragraph, for the same reason.
    """
    if not html or "<div" not in html:
        return html
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    for card in _by_class(root, "kg-bookmark-card"):
        _rebuild_bookmark(card)
    for div in list(root.iter("div")):
        if div is root or any(a.tag in _INLINE_HOSTS for a in div.iterancestors()):
            continue
        if any(d.tag in _BLOCKISH for d in div.iterdescendants()):
            continue
        if (div.text_content() or "").strip():
            div.tag = "p"
    return inner_html(root)


def _by_class(root: etree._Element, name: str) -> list[lxml.html.HtmlElement]:
    return [
        e
        for e in root.iter()
        if isinstance(e, lxml.html.HtmlElement) and name in (e.get("class") or "").split()
    ]


_BLOCKISH = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "table", "pre",
    "blockquote", "figure", "figcaption", "section", "article", "aside", "header", "footer",
    "dl", "dt", "dd", "hr", "details", "summary", "nav", "main", "form",
})  # fmt: skip


def _rebuild_bookmark(card: etree._Element) -> None:
    def text(name: str) -> str:
        found = _by_class(card, name)
        return re.sub(r"\s+", " ", found[0].text_content()).strip() if found else ""

    links = _by_class(card, "kg-bookmark-container")
    href = links[0].get("href") if links else None
    title, description = text("kg-bookmark-title"), text("kg-bookmark-description")
    if not href or not title:
        return
    captions = card.findall("figcaption")
    for child in list(card):
        card.remove(child)
    card.text = None
    paragraph = etree.SubElement(card, "p")
    link = etree.SubElement(paragraph, "a", href=href)
    link.text = title
    if description:
        etree.SubElement(card, "p").text = description
    for caption in captions:
        card.append(caption)


def drop_title_heading(html: str, title: str) -> str:
    """The article without a leading heading that only repeats its title (pages of short
    posts start with the title as an ``<h1>``: the draft has its own title)."""
    wanted = _comparable(title)
    if not wanted or not html or not html.strip():
        return html
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    if (root.text or "").strip():
        return html
    for child in root:
        if not isinstance(child.tag, str):
            continue  # a comment
        if child.tag in ("h1", "h2") and _comparable(child.text_content()) == wanted:
            child.drop_tree()
            return inner_html(root)
        if child.text_content().strip() or child.find(".//img") is not None:
            return html
    return html


def _comparable(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text).split()).casefold()


_FRAGMENT_HREF = re.compile(r"""href\s*=\s*["']#([^"'\s>]+)["']""", re.I)


def fragment_names(html: str | bytes) -> set[str]:
    """The names that a page's or a feed's own ``href="#…"`` links point to."""
    text = html.decode("utf-8", "replace") if isinstance(html, bytes) else html
    return {unquote(name) for name in _FRAGMENT_HREF.findall(text or "")}


def keep_fragment_links(html: str, bases: Collection[str], fragments: Collection[str] = ()) -> str:
    """Links to a place inside the article made relative again (``href="#fn1"``).

    feedparser resolves ``#fn1`` against the feed's URL, trafilatura against the site's
    home page, ``absolutize`` against the article: a footnote would then leave the article.
    A link to one of ``bases`` (the article's, the feed's and the site's URLs) goes back to
    ``#name`` when the article has an element with that id, or when the original had a
    ``#name`` link (``fragments``: trafilatura keeps no ids).
    """
    if not html or "#" not in html:
        return html
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    ids = {e.get("id") for e in root.iter() if isinstance(e.tag, str) and e.get("id")}
    places = {_place(base) for base in bases if base}
    changed = False
    for link in root.iter("a"):
        href = link.get("href") or ""
        target, _, name = href.partition("#")
        if not name or not target or _place(target) not in places:
            continue
        if unquote(name) in ids or unquote(name) in fragments:
            link.set("href", f"#{name}")
            changed = True
    return inner_html(root) if changed else html


def _place(url: str) -> str:
    parts = urlsplit(url.split("#", 1)[0])
    return f"{parts.netloc.lower()}{parts.path.rstrip('/')}?{parts.query}"


def is_link_post(entry_url: str | None, site_urls: Collection[str | None]) -> bool:
    """Does the entry link to someone else's article (a link blog's post), not to its own
    site's? Hosts match when one is the other or a subdomain of it (www., blog.)."""
    sites = [url for url in site_urls if same_site(url, url)]
    if not same_site(entry_url, entry_url) or not sites:
        return False
    return not any(same_site(entry_url, site) for site in sites)
