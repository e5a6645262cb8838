"""Newsletter boilerplate: subscribe boxes, "thanks for reading" sign-offs, share bars.

Nobody reading the French edition can act on "subscribe here" or "share this issue", and an
editor would delete them from every draft by hand. Two passes find them in one article:

- by markup: the class names Ghost, Substack, WordPress and Medium give their widgets (only
  in HTML that has not been sanitized yet: feed content, or a page before extraction);
- by text: a block whose whole text is a call to subscribe, share, comment or sign in, or a
  sign-off thanking the reader. Long blocks are never touched, and blocks in the middle of
  the article only when they are a few words long, so a post *about* subscriptions keeps
  every paragraph.

A third pass (``remove_recurring``) needs the feed's other entries: a block that comes back
across them, whatever its words (a newsletter's own intro and sign-off), is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import lxml.html
from lxml import etree

from aggregator.extraction.fragment import inner_html

_WIDGET_CLASSES = re.compile(
    r"(?:^|\s)(?:subscription-widget(?:-wrap)?|subscribe-widget|subscribe-footer|"
    r"button-wrapper|captioned-button-wrap|share-?bar|share-buttons|social-share|sharedaddy|"
    r"sd-sharing(?:-enabled)?|sd-like|jp-relatedposts|addtoany_share\w*|"
    r"wp-block-jetpack-subscriptions|kg-signup-card|kg-cta-card|gh-post-upgrade-cta|"
    r"post-upgrade-cta|footer-cta|newsletter-signup|signup-box|post-share|share-dialog|"
    r"pencraft-share|post-ufi)(?:\s|$)",
    re.I,
)
# The last alternative starts at the first "utm_medium=email&" only: tried from every one,
# it is quadratic in the length of the href (9 s for 136 KB).
_SIGNUP_LINK = re.compile(
    r"#/portal/(?:signup|signin|account)|/subscribe\b|/signup\b|/sign-up\b|"
    r"\?action=share|/share\b|^(?:(?!utm_medium=email&).)*utm_medium=email&.*action=share",
    re.I,
)
# Sign-offs and calls to action, judged on the block's whole text.
_ANYWHERE = re.compile(
    r"^(?:subscribe(?: now| for free| to \S+)?|share(?: this)?(?: post| article| issue)?|"
    r"share on \w+|leave a comment|like this|share this|view comments|"
    r"upgrade to paid|sign in|sign up)\W*$",
    re.I,
)
# At either end of the article, a short block that thanks the reader, or asks them to
# subscribe, sign up, upgrade or share (an imperative: "people who subscribe" is not one).
_ASK = r"(?:^|[.!?:,]\s*|\b(?:you can|please|consider|to|and|or|then)\s+)"
_AT_EDGES = re.compile(
    r"^(?:thanks?(?: you)?(?: so much)? for reading\b"
    r"|.*\b(?:forwarded (?:this|to you)|was forwarded|sent you this)\b"
    rf"|.*{_ASK}(?:subscribe|sign up|upgrade)\b"
    r"|.*\b(?:become|upgrade to) a (?:paid |paying )?(?:member|subscriber)\b"
    r"|.*\bcomments powered by\b"
    rf"|.*{_ASK}share (?:it|this)\b)",
    re.I,
)
EDGE_BLOCKS = 3  # blocks at each end of the article where sign-offs live
EDGE_MAX_WORDS = 40
ANYWHERE_MAX_WORDS = 6
_TEXT_BLOCKS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "div", "figure")
_EMPTY_CONTAINERS = ("ul", "ol", "figure", "div", "section", "aside", "blockquote", "p")


def strip_widgets(html: str) -> str:
    """Drop elements that platforms mark as subscribe, share or upgrade widgets."""
    if not html or not html.strip():
        return html
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    dropped = False
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        marked = _WIDGET_CLASSES.search(element.get("class", "")) or (
            element.get("data-component-name", "") in ("SubscribeWidget", "ShareButton")
        )
        if marked and element.getparent() is not None:
            element.drop_tree()
            dropped = True
    return inner_html(root) if dropped else html


def remove_boilerplate(html: str) -> str:
    """The article without its subscribe boxes, share bars and thank-you sign-offs."""
    if not html or not html.strip():
        return html
    html = strip_widgets(html)
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    blocks = [e for e in root.iter(*_TEXT_BLOCKS) if not _holds_blocks(e)]
    texts = [_text(e) for e in blocks]
    meaningful = [i for i, t in enumerate(texts) if t]
    edges = set(meaningful[:EDGE_BLOCKS] + meaningful[-EDGE_BLOCKS:])
    removed = False
    for i, (element, text) in enumerate(zip(blocks, texts, strict=True)):
        if not text or element.find(".//img") is not None:
            continue
        if is_boilerplate(text, at_edge=i in edges, links=_links(element)):
            element.drop_tree()
            removed = True
    if not removed:
        return html
    _tidy(root)
    return inner_html(root)


def is_boilerplate(text: str, *, at_edge: bool, links: tuple[str, ...] = ()) -> bool:
    """Is this block's whole text a call to subscribe/share or a sign-off? (pure)"""
    words = len(text.split())
    if words <= ANYWHERE_MAX_WORDS and _ANYWHERE.match(text):
        return True
    if not at_edge or words > EDGE_MAX_WORDS:
        return False
    if _AT_EDGES.match(text):
        return True
    # A short block at the edge that is mostly a link to sign up or share.
    return words <= 20 and any(_SIGNUP_LINK.search(href) for href in links)


def _holds_blocks(element: etree._Element) -> bool:
    return any(
        isinstance(d.tag, str) and d.tag in (*_TEXT_BLOCKS, "ul", "ol", "table", "pre")
        for d in element.iterdescendants()
    )


def _text(element: lxml.html.HtmlElement) -> str:
    return re.sub(r"\s+", " ", element.text_content()).strip()


def _links(element: etree._Element) -> tuple[str, ...]:
    return tuple(a.get("href", "") for a in element.iter("a"))


def _tidy(root: etree._Element) -> None:
    """Remove what the boilerplate leaves behind: empty containers, rules at either end."""
    changed = True
    while changed:
        changed = False
        for element in list(root.iter(*_EMPTY_CONTAINERS)):
            if element is root or element.getparent() is None:
                continue
            if not _text(element) and element.find(".//img") is None:
                element.drop_tree()  # type: ignore[attr-defined]
                changed = True
    children = [c for c in root if isinstance(c.tag, str)]
    while children and children[-1].tag == "hr" and not (children[-1].tail or "").strip():
        children.pop().drop_tree()  # type: ignore[attr-defined]
    while children and children[0].tag == "hr" and not (root.text or "").strip():
        children.pop(0).drop_tree()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- recurring blocks

# A newsletter's own intro and sign-off ("Hello and welcome back to …", "Subscribers keep
# this letter independent …") follow no pattern, but they come back in every post. A block
# is taken for one when it is in RECURRING_IN of the feed's recent entries (this one
# included), or at the start or end of RECURRING_AT_EDGES entries that came in one poll (a
# later post that ends by quoting an earlier one keeps its quote). Headings and short
# blocks are never taken: a recurring "Links" heading is the article's structure.
RECURRING_IN = 3
RECURRING_AT_EDGES = 2
RECURRING_MIN_WORDS = 5
_RECURRING_TAGS = ("p", "li", "blockquote", "figcaption", "dd", "dt")
# What was dropped stays in the stored full text as a comment (sanitizing removes comments
# everywhere the text is shown or translated): the draft's warnings list it on every
# redraft, and the next entries still see that this entry had the block.
_NOTE = "aggregator:recurring "
_NOTES = re.compile(r"<!--" + re.escape(_NOTE) + r"(.*?)-->", re.S)


def block_key(text: str) -> str:
    """The form under which blocks of different entries are compared."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def _candidates(root: etree._Element) -> list[tuple[etree._Element, str]]:
    found = []
    for element in root.iter(*_RECURRING_TAGS):
        if _holds_blocks(element) or element.find(".//img") is not None:
            continue
        text = _text(element)
        if text:
            found.append((element, text))
    return found


def _profile(versions: Sequence[str]) -> tuple[set[str], set[str]]:
    """(every block, the blocks at its start and end) of one entry, across its versions."""
    everywhere: set[str] = set()
    edges: set[str] = set()
    for html in versions:
        if not html or not html.strip():
            continue
        dropped = {block_key(text) for text in recorded_drops(html)}
        root = lxml.html.fragment_fromstring(html, create_parent="div")
        keys = [block_key(text) for _element, text in _candidates(root)]
        everywhere |= set(keys) | dropped
        edges |= set(keys[:EDGE_BLOCKS] + keys[-EDGE_BLOCKS:]) | dropped
    return everywhere, edges


def remove_recurring(
    html: str, recent: Sequence[Sequence[str]], together: Sequence[Sequence[str]] = ()
) -> str:
    """The article without the blocks that recur across the feed's ``recent`` entries
    (each given as its versions: feed content, full text), or at the edges of those that
    came ``together`` with it; what was dropped is noted in the result (``recorded_drops``).
    """
    if not html or not html.strip() or not recent:
        return html
    profiles = [_profile(versions)[0] for versions in recent]
    edge_profiles = [_profile(versions)[1] for versions in together]
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    blocks = _candidates(root)
    edges = {id(e) for e, _t in blocks[:EDGE_BLOCKS] + blocks[-EDGE_BLOCKS:]}
    dropped: list[str] = []
    for element, text in blocks:
        if len(text.split()) < RECURRING_MIN_WORDS:
            continue
        key = block_key(text)
        anywhere = 1 + sum(key in everywhere for everywhere in profiles)
        at_edges = 1 + sum(key in edges_of for edges_of in edge_profiles)
        if anywhere >= RECURRING_IN or (id(element) in edges and at_edges >= RECURRING_AT_EDGES):
            element.drop_tree()  # type: ignore[attr-defined]
            dropped.append(text)
    if not dropped:
        return html
    _tidy(root)
    notes = "".join(f"<!--{_NOTE}{_comment_safe(text)}-->" for text in dropped)
    return notes + inner_html(root)


def recorded_drops(html: str) -> list[str]:
    """The recurring blocks ``remove_recurring`` dropped from this full text."""
    return _NOTES.findall(html or "")


def _comment_safe(text: str) -> str:
    return re.sub(r"-{2,}", "-", text).rstrip("-").replace(">", "›")
