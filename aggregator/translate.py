"""Segment an article into blocks, protect inline markup, batch, translate, verify.

A block is a leaf element that holds text (p, h1-h6, li, blockquote, figcaption, td, ...).
Its inline markup becomes numbered placeholders (``[[1]]…[[/1]]``) that survive plain-text
engines; code and images are single opaque placeholders and are never sent. Blocks go to
the engine many per request, one block per line, up to the engine's character limit. The
result is accepted only if every block came back with all its placeholders; a batch that
fails that check is retried block by block, and a block that still fails fails the whole
translation: a draft is complete or it does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape

import lxml.html
from lxml import etree

from aggregator.engines import Engine
from aggregator.errors import TranslateError
from aggregator.extract import sanitize
from aggregator.language import detect

BLOCK_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "figcaption", "td", "th",
    "dt", "dd", "caption", "summary",
}  # fmt: skip
CONTAINER_TAGS = BLOCK_TAGS | {
    "div", "ul", "ol", "dl", "table", "thead", "tbody", "tfoot", "tr", "figure", "section",
    "article", "details", "pre", "hr", "aside", "header", "footer", "main", "nav",
}  # fmt: skip
NEVER_TRANSLATED = {"pre", "code", "kbd", "samp", "var", "script", "style"}
OPAQUE_INLINE = {"code", "kbd", "samp", "var", "img", "br", "wbr", "math", "svg"}
COUNTED = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "a", "img", "blockquote", "table")

_PLACEHOLDER = re.compile(r"\[\[\s*(/?)\s*(\d+)\s*\]\]")
_SPACES = re.compile(r"\s+")


@dataclass
class Block:
    """One leaf element's text, with its inline markup replaced by placeholders."""

    element: etree._Element
    text: str
    tags: dict[int, tuple[str, str]] = field(default_factory=dict)  # n -> (open, close)
    opaque: dict[int, str] = field(default_factory=dict)  # n -> whole element HTML


@dataclass(frozen=True)
class Translation:
    title: str
    body_html: str
    engine: str
    characters: int
    requests: int
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------- segmentation


def parse_fragment(html: str) -> etree._Element:
    root: etree._Element = lxml.html.fragment_fromstring(html or "", create_parent="div")
    return root


def leaf_blocks(root: etree._Element) -> Iterator[etree._Element]:
    """Block elements that hold text and contain no other block, in document order."""
    for element in root.iter():
        if not isinstance(element.tag, str) or element.tag not in BLOCK_TAGS:
            continue
        if any(a.tag in NEVER_TRANSLATED for a in element.iterancestors()):
            continue
        if any(
            isinstance(d.tag, str) and d.tag in CONTAINER_TAGS for d in element.iterdescendants()
        ):
            continue
        yield element


def protect(element: etree._Element) -> Block:
    """Replace the element's inline markup by placeholders; the text is one line."""
    block = Block(element=element, text="")
    counter = [0]

    def walk(node: etree._Element) -> str:
        parts = [node.text or ""]
        for child in node:
            counter[0] += 1
            n = counter[0]
            tag = child.tag if isinstance(child.tag, str) else ""
            if not tag or tag in OPAQUE_INLINE:
                html = etree.tostring(child, encoding="unicode", method="html", with_tail=False)
                block.opaque[n] = html if tag else ""
                parts.append(f"[[{n}]]")
            else:
                attributes = "".join(
                    f' {k!s}="{escape(str(v), quote=True)}"' for k, v in child.attrib.items()
                )
                block.tags[n] = (f"<{tag}{attributes}>", f"</{tag}>")
                parts.append(f"[[{n}]]{walk(child)}[[/{n}]]")
            parts.append(child.tail or "")
        return "".join(parts)

    block.text = _SPACES.sub(" ", walk(element)).strip()
    return block


def restore(block: Block, translated: str) -> str:
    """Inner HTML of the block from translated text; TranslateError if markup was lost."""
    text = _SPACES.sub(" ", translated).strip()
    expected = (
        {f"{n}" for n in block.opaque}
        | {f"{n}" for n in block.tags}
        | {f"/{n}" for n in block.tags}
    )
    found = [f"{slash}{n}" for slash, n in _PLACEHOLDER.findall(text)]
    if sorted(found) != sorted(expected):
        missing = sorted(expected - set(found))
        raise TranslateError(
            f"inline markup lost in translation (placeholders {', '.join(missing) or 'repeated'})"
        )
    out: list[str] = []
    stack: list[int] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(escape(text[position : match.start()], quote=False))
        slash, n = match.group(1), int(match.group(2))
        if n in block.opaque:
            out.append(block.opaque[n])
        elif slash:
            if not stack or stack[-1] != n:
                raise TranslateError("inline markup came back in the wrong order")
            stack.pop()
            out.append(block.tags[n][1])
        else:
            stack.append(n)
            out.append(block.tags[n][0])
        position = match.end()
    out.append(escape(text[position:], quote=False))
    return "".join(out)


def _replace_content(element: etree._Element, inner_html: str) -> None:
    tail = element.tail
    for child in list(element):
        element.remove(child)
    element.text = None
    fragment = lxml.html.fragment_fromstring(f"<div>{inner_html}</div>")
    element.text = fragment.text
    for child in list(fragment):
        element.append(child)
    element.tail = tail


def structure_counts(root: etree._Element) -> dict[str, int]:
    counts = dict.fromkeys(COUNTED, 0)
    for element in root.iter(*COUNTED):
        counts[str(element.tag)] += 1
    return counts


# ---------------------------------------------------------------- batching


def batches(texts: list[str], limit: int) -> Iterator[list[int]]:
    """Group line indexes so that each group, joined by newlines, fits in ``limit``."""
    current: list[int] = []
    size = 0
    for i, text in enumerate(texts):
        cost = len(text) + (1 if current else 0)
        if current and size + cost > limit:
            yield current
            current, size = [], 0
            cost = len(text)
        current.append(i)
        size += cost
    if current:
        yield current


class _Counter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.characters = 0
        self.requests = 0

    def __call__(self, text: str) -> str:
        self.characters += len(text)
        self.requests += 1
        return self.engine.translate(text)


def _translate_lines(lines: list[str], call: _Counter) -> list[str]:
    """Translate lines, many per request; a batch whose line count changed is redone alone."""
    results: list[str] = [""] * len(lines)
    for group in batches(lines, call.engine.max_chars):
        joined = "\n".join(lines[i] for i in group)
        if len(joined) > call.engine.max_chars:
            raise TranslateError(
                f"{call.engine.name}: one block is longer than the engine's limit "
                f"of {call.engine.max_chars} characters"
            )
        answer = call(joined).split("\n")
        answer = [line for line in answer if line.strip()] if len(answer) != len(group) else answer
        if len(answer) == len(group):
            for i, line in zip(group, answer, strict=True):
                results[i] = line
            continue
        for i in group:
            results[i] = call(lines[i]).replace("\n", " ")
    return results


# ---------------------------------------------------------------- whole articles


def translate_article(
    title: str,
    html: str,
    engine: Engine,
    *,
    target_language: str,
) -> Translation:
    """Translate a title and a sanitized article; raise TranslateError unless complete."""
    root = parse_fragment(html)
    before = structure_counts(root)
    blocks = [protect(element) for element in leaf_blocks(root)]
    to_send = [b for b in blocks if b.text and not _is_placeholders_only(b.text)]
    to_send = [b for b in to_send if detect(_without_placeholders(b.text)) != target_language]
    call = _Counter(engine)
    lines = [_SPACES.sub(" ", title).strip(), *(b.text for b in to_send)]
    translated = _translate_lines(lines, call)
    warnings: list[str] = []
    for block, text in zip(to_send, translated[1:], strict=True):
        try:
            inner = restore(block, text)
        except TranslateError:
            inner = restore(block, call(block.text).replace("\n", " "))
        _replace_content(block.element, inner)
    after = structure_counts(root)
    if after != before:
        changed = ", ".join(f"{k} {before[k]}→{after[k]}" for k in COUNTED if before[k] != after[k])
        raise TranslateError(f"the translation changed the article's structure ({changed})")
    body = sanitize("".join(_inner(root)))
    new_title = translated[0].strip()
    if title.strip() and not new_title:
        raise TranslateError(f"{engine.name}: the title came back empty")
    return Translation(
        title=new_title,
        body_html=body,
        engine=engine.name,
        characters=call.characters,
        requests=call.requests,
        warnings=tuple(warnings),
    )


def _inner(root: etree._Element) -> Iterator[str]:
    if root.text:
        yield escape(root.text, quote=False)
    for child in root:
        yield etree.tostring(child, encoding="unicode", method="html")


def _without_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub(" ", text)


def _is_placeholders_only(text: str) -> bool:
    return not _without_placeholders(text).strip()
