"""Article HTML -> translatable units with inline markup as placeholders, and back.

A unit is one run of inline content: the content of a leaf block (p, h1-h6, li, td,
figcaption, ...), or text lying between blocks (beside a nested list, after a figure), which
a run wrapper collects so that no sentence escapes translation. Inside a unit, links,
emphasis and the like become numbered pairs ``[[1]]…[[/1]]``; code, images, line breaks and
glossary terms become single opaque ``[[n]]`` put back verbatim and never sent. Markup that
wraps a whole unit (``<h3><strong>…</strong></h3>``) stays outside, costing nothing.

Placeholders are plain text on purpose: deep-translator's Google engine scrapes a page and
returns text, so anything tag-like would be lost there.

An image's ``alt`` and ``title`` are units of their own, after every block: a stand-in
element (``x-img-alt``, ``x-img-title``) holds the text while it is translated or edited,
and ``replace_content`` writes it back into the attribute of the n-th image (translation
keeps the images, in order); ``serialize`` removes the stand-ins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape

import lxml.html
from lxml import etree

from aggregator.errors import TranslateError
from aggregator.extraction.fragment import inner_html
from aggregator.translation.glossary import Glossary

INLINE_OPAQUE = frozenset({"code", "kbd", "samp", "var", "img", "br", "wbr", "math", "svg"})
NEVER_TRANSLATED = frozenset({"pre", "code", "kbd", "samp", "var", "script", "style"})
INLINE_WRAPPERS = frozenset({
    "a", "abbr", "b", "cite", "del", "em", "i", "ins", "mark", "q", "s", "small", "span",
    "strong", "sub", "sup", "time", "u", "font", "bdi", "bdo",
})  # fmt: skip
BLOCK_LEVEL = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "figcaption", "td", "th",
    "dt", "dd", "caption", "summary", "div", "ul", "ol", "dl", "table", "thead", "tbody",
    "tfoot", "tr", "figure", "section", "article", "details", "pre", "hr", "aside", "header",
    "footer", "main", "nav", "address", "center",
})  # fmt: skip
RUN = "x-run"  # wraps loose inline content between blocks while it is being translated
# Stand-ins for the image attributes read by people (screen readers, hover, broken images).
ATTRIBUTE_UNITS = {"alt": "x-img-alt", "title": "x-img-title"}
_STAND_INS = frozenset(ATTRIBUTE_UNITS.values())
# What the integrity check counts before and after translation.
COUNTED = (
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "a", "img", "blockquote", "table", "tr",
    "td", "th", "pre", "code", "figure", "figcaption", "ul", "ol",
)  # fmt: skip

PLACEHOLDER = re.compile(r"\[\[\s*+(/?)\s*+(\d++)\s*+\]\]")  # possessive: linear on "[[   …"
_LITERAL = r"(?P<literal>\[\[\s*+/?\s*+\d++\s*+\]\])"
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?)])")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass
class Unit:
    """One run of inline content, as a single line of text with placeholders."""

    element: etree._Element
    text: str = ""
    tags: dict[int, tuple[str, str]] = field(default_factory=dict)  # n -> (open, close)
    opaque: dict[int, str] = field(default_factory=dict)  # n -> HTML put back as it was
    wrap: tuple[str, str] = ("", "")  # markup around the whole content, never sent

    @property
    def plain(self) -> str:
        """The words without markup, code or images: what a language guess looks at."""
        text = PLACEHOLDER.sub(lambda m: "" if int(m.group(2)) in self.tags else " ", self.text)
        return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _SPACES.sub(" ", text)).strip()

    @property
    def has_words(self) -> bool:
        return bool(_LETTER.search(self.plain))


# ---------------------------------------------------------------- parsing and units


def parse_fragment(html: str) -> etree._Element:
    root: etree._Element = lxml.html.fragment_fromstring(html or "", create_parent="div")
    return root


def units(root: etree._Element, glossary: Glossary | None = None) -> list[Unit]:
    """Every translatable unit of the fragment, in document order (the tree is prepared),
    then the images' alt and title texts."""
    _remove_stand_ins(root)
    has_attributes = any(True for _ in _attribute_sources(root))
    if has_attributes and not any(_is_block(child) for child in root):
        _wrap_all(root)  # the root itself must not be a unit: stand-ins hang from it
    for element in list(root.iter()):
        if _is_translatable_container(element, root):
            _wrap_loose_runs(element)
    found = []
    for element in root.iter():
        if not _is_translatable_container(element, root) and element.tag != RUN:
            continue
        if any(_is_block(child) for child in element):
            continue
        if not (element.text or "").strip() and len(element) == 0:
            continue
        found.append(protect(element, glossary))
    # Last, so that the blocks holding the images are put back before their attributes.
    found += [protect(stand_in, glossary) for stand_in in attribute_stand_ins(root)]
    return found


def _images(root: etree._Element) -> list[etree._Element]:
    return [
        img
        for img in root.iter("img")
        if not any(a.tag in NEVER_TRANSLATED for a in img.iterancestors())
    ]


def _attribute_sources(root: etree._Element) -> Iterator[tuple[int, str, str]]:
    """(image index, attribute, text) of every image attribute worth translating."""
    for index, img in enumerate(_images(root)):
        for attribute in ATTRIBUTE_UNITS:
            value = img.get(attribute) or ""
            if _LETTER.search(value):
                yield index, attribute, value


def attribute_stand_ins(root: etree._Element) -> list[etree._Element]:
    """A stand-in element, appended to ``root``, for each image alt and title text."""
    stand_ins = []
    for index, attribute, value in list(_attribute_sources(root)):
        stand_in = root.makeelement(
            ATTRIBUTE_UNITS[attribute], {"data-image": str(index), "data-attribute": attribute}
        )
        stand_in.text = value
        root.append(stand_in)
        stand_ins.append(stand_in)
    return stand_ins


def is_stand_in(element: etree._Element) -> bool:
    return tag_of(element) in _STAND_INS


def _remove_stand_ins(root: etree._Element) -> None:
    for stand_in in [c for c in root if is_stand_in(c)]:
        root.remove(stand_in)


def _wrap_all(element: etree._Element) -> None:
    run = element.makeelement(RUN, {})
    run.text, element.text = element.text, None
    for child in list(element):
        run.append(child)
    element.append(run)


def editable_blocks(root: etree._Element) -> list[etree._Element]:
    """What an editor edits one by one: the leaf blocks, then the images' alt and title
    texts (stand-ins appended to ``root``: write with ``replace_content``, read the result
    with ``serialize``). Appended last, so that block numbers stay those of the blocks."""
    _remove_stand_ins(root)
    return [*leaf_blocks(root), *attribute_stand_ins(root)]


def tag_of(node: etree._Element) -> str:
    """The element's tag, or "" for a comment or processing instruction."""
    tag: object = node.tag  # a function, not a string, for comments
    return tag if isinstance(tag, str) else ""


def _is_block(node: etree._Element) -> bool:
    tag = tag_of(node)
    return tag in BLOCK_LEVEL or tag == RUN


def _is_translatable_container(element: etree._Element, root: etree._Element) -> bool:
    tag = tag_of(element)
    if not tag:
        return False
    if element is not root and tag not in BLOCK_LEVEL:
        return False
    if tag in NEVER_TRANSLATED:
        return False
    return not any(a.tag in NEVER_TRANSLATED for a in element.iterancestors())


def _wrap_loose_runs(element: etree._Element) -> None:
    """Put inline content that sits between block children into run wrappers."""
    children = list(element)
    if not any(_is_block(child) for child in children):
        return
    runs: list[tuple[etree._Element | None, list[etree._Element]]] = []
    owner: etree._Element | None = None  # None: the run starts with element.text
    nodes: list[etree._Element] = []
    for child in children:
        if _is_block(child):
            runs.append((owner, nodes))
            owner, nodes = child, []
        else:
            nodes.append(child)
    runs.append((owner, nodes))
    for owner, nodes in runs:
        text = element.text if owner is None else owner.tail
        if not (text or "").strip() and not any(tag_of(n) for n in nodes):
            continue
        run = element.makeelement(RUN, {})
        run.text = text
        if owner is None:
            element.text = None
            element.insert(0, run)
        else:
            owner.tail = None
            owner.addnext(run)
        for node in nodes:
            run.append(node)  # moves the node, its tail with it


def serialize(root: etree._Element) -> str:
    """The fragment's HTML, run wrappers and attribute stand-ins removed."""
    _remove_stand_ins(root)
    for run in list(root.iter(RUN)):
        run.drop_tag()  # type: ignore[attr-defined]
    return inner_html(root)


# ---------------------------------------------------------------- protect and restore


def _open_tag(element: etree._Element) -> str:
    attributes = "".join(
        f' {name!s}="{escape(str(value), quote=True)}"' for name, value in element.attrib.items()
    )
    return f"<{element.tag}{attributes}>"


def _is_wrapper(node: etree._Element) -> bool:
    return tag_of(node) in INLINE_WRAPPERS


def _unwrap(node: etree._Element, *, strict: bool) -> tuple[str, str, etree._Element]:
    """The inline wrappers that hold all of node's content, as (opening tags, closing tags,
    innermost element); ("", "", node) when there are none."""
    opening, closing = "", ""
    wrapper = _only_child(node, strict=strict)
    while wrapper is not None and _is_wrapper(wrapper):
        opening += _open_tag(wrapper)
        closing = f"</{wrapper.tag}>" + closing
        node = wrapper
        wrapper = _only_child(node, strict=strict)
    return opening, closing, node


def _only_child(node: etree._Element, *, strict: bool) -> etree._Element | None:
    """The single element child that holds all of node's content, if there is one."""
    kids = list(node)
    if len(kids) != 1:
        return None
    before, after = node.text or "", kids[0].tail or ""
    if strict and (before or after):
        return None
    if before.strip() or after.strip():
        return None
    return kids[0]


def protect(element: etree._Element, glossary: Glossary | None = None) -> Unit:
    """The element's content as one line with placeholders (the element is not changed)."""
    unit = Unit(element=element)
    counter = [0]
    pattern = _text_pattern(glossary)

    def number() -> int:
        counter[0] += 1
        return counter[0]

    def text_piece(text: str | None) -> str:
        if not text:
            return ""
        if pattern is None:
            return text
        out, position = [], 0
        for match in pattern.finditer(text):
            out.append(text[position : match.start()])
            n = number()
            if match.lastgroup == "literal" or glossary is None:
                unit.opaque[n] = escape(match.group(), quote=False)
            else:
                unit.opaque[n] = escape(glossary.replacement(match), quote=False)
            out.append(f"[[{n}]]")
            position = match.end()
        out.append(text[position:])
        return "".join(out)

    def walk(node: etree._Element) -> str:
        parts = [text_piece(node.text)]
        for child in node:
            tag = tag_of(child)
            if not tag:
                pass  # a comment: dropped, its tail kept
            elif tag in INLINE_OPAQUE or not _is_wrapper(child):
                n = number()
                unit.opaque[n] = etree.tostring(
                    child, encoding="unicode", method="html", with_tail=False
                )
                parts.append(f"[[{n}]]")
            else:
                # <a><em>x</em></a> travels as one pair of placeholders, not two.
                opening, closing, inner = _unwrap(child, strict=True)
                n = number()
                unit.tags[n] = (_open_tag(child) + opening, closing + f"</{tag}>")
                parts.append(f"[[{n}]]{walk(inner)}[[/{n}]]")
            parts.append(text_piece(child.tail))
        return "".join(parts)

    wrap_open, wrap_close, node = _unwrap(element, strict=False)
    unit.wrap = (wrap_open, wrap_close)
    unit.text = _SPACES.sub(" ", walk(node)).strip()
    return unit


def _text_pattern(glossary: Glossary | None) -> re.Pattern[str] | None:
    terms = glossary.pattern if glossary else None
    return _compiled_text_pattern(terms.pattern if terms else "")


_patterns: dict[str, re.Pattern[str]] = {}


def _compiled_text_pattern(terms: str) -> re.Pattern[str]:
    if terms not in _patterns:
        _patterns[terms] = re.compile(_LITERAL + (f"|{terms}" if terms else ""))
    return _patterns[terms]


def restore(unit: Unit, translated: str) -> str:
    """Inner HTML of the unit from its translation; TranslateError if markup was lost."""
    text = _SPACES.sub(" ", translated).strip()
    expected = [str(n) for n in unit.opaque] + [f"{s}{n}" for n in unit.tags for s in ("", "/")]
    found = [f"{slash}{n}" for slash, n in PLACEHOLDER.findall(text)]
    if sorted(found) != sorted(expected):
        missing = sorted(set(expected) - set(found), key=lambda p: int(p.lstrip("/")))
        extra = sorted(set(found) - set(expected))
        detail = ", ".join(
            [f"[[{p}]] missing" for p in missing] + [f"[[{p}]] unexpected" for p in extra]
        )
        raise TranslateError(f"inline markup lost in translation ({detail or 'repeated'})")
    out: list[str] = [unit.wrap[0]]
    stack: list[int] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        out.append(escape(text[position : match.start()], quote=False))
        slash, n = match.group(1), int(match.group(2))
        if n in unit.opaque:
            out.append(unit.opaque[n])
        elif slash:
            if not stack or stack[-1] != n:
                raise TranslateError("inline markup came back in the wrong order")
            stack.pop()
            out.append(unit.tags[n][1])
        else:
            stack.append(n)
            out.append(unit.tags[n][0])
        position = match.end()
    out.append(escape(text[position:], quote=False))
    out.append(unit.wrap[1])
    return "".join(out)


def replace_content(element: etree._Element, inner: str) -> None:
    """The element's content becomes ``inner``; a stand-in's text goes to its image."""
    if is_stand_in(element):
        _write_attribute(element, text_of_inner(inner))
        return
    tail = element.tail
    for child in list(element):
        element.remove(child)
    fragment = lxml.html.fragment_fromstring(f"<div>{inner}</div>")
    element.text = fragment.text
    for child in list(fragment):
        element.append(child)
    element.tail = tail


def _write_attribute(stand_in: etree._Element, text: str) -> None:
    root = stand_in.getparent()
    if root is None:
        raise TranslateError("an image's alt or title text lost its image")
    images = _images(root)
    index = int(stand_in.get("data-image", "-1"))
    if not 0 <= index < len(images):
        raise TranslateError(f"image {index + 1} of the article is gone: its alt text has no place")
    images[index].set(stand_in.get("data-attribute", "alt"), text)
    stand_in.text = text
    for child in list(stand_in):
        stand_in.remove(child)


def text_runs(text: str) -> list[str]:
    """The text split around its placeholders: text, token, text, token, …, text."""
    parts: list[str] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        parts += [text[position : match.start()], match.group()]
        position = match.end()
    parts.append(text[position:])
    return parts


# ---------------------------------------------------------------- leaf blocks

# The block elements that hold text (what an editor compares side by side), and the
# elements that, inside one of them, make it a container rather than a leaf.
BLOCK_TAGS = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "figcaption", "td", "th",
    "dt", "dd", "caption", "summary",
})  # fmt: skip
CONTAINER_TAGS = BLOCK_LEVEL - {"hr"}


def leaf_blocks(root: etree._Element) -> Iterator[etree._Element]:
    """Block elements that hold text and contain no other block, in document order."""
    for element in root.iter():
        if tag_of(element) not in BLOCK_TAGS:
            continue
        if any(a.tag in NEVER_TRANSLATED for a in element.iterancestors()):
            continue
        if any(tag_of(d) in CONTAINER_TAGS for d in element.iterdescendants()):
            continue
        yield element


# ---------------------------------------------------------------- titles and keys


def title_unit(title: str, glossary: Glossary | None = None) -> Unit:
    element = lxml.html.Element("h1")
    element.text = title
    return protect(element, glossary)


def text_of_inner(inner: str) -> str:
    fragment = lxml.html.fragment_fromstring(f"<div>{inner}</div>")
    return _SPACES.sub(" ", fragment.text_content()).strip()


def normalise(text: str) -> str:
    """The form a unit is remembered under: NFC, whitespace collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


# ---------------------------------------------------------------- integrity


def structure_counts(root: etree._Element) -> dict[str, int]:
    counts = dict.fromkeys(COUNTED, 0)
    for element in root.iter(*COUNTED):
        counts[str(element.tag)] += 1
    return counts


def verbatim_parts(root: etree._Element) -> list[str]:
    """Code and preformatted text, which translation must leave byte for byte."""
    return [
        etree.tostring(e, encoding="unicode", method="html", with_tail=False)
        for e in root.iter("pre", "code", "kbd", "samp")
        if not any(a.tag in NEVER_TRANSLATED for a in e.iterancestors())
    ]


def leaf_texts(root: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    """(element, visible text) of every unit of an HTML fragment, code left out."""
    for unit in units(root):
        yield unit.element, unit.plain
