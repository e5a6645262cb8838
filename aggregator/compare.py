"""What an editor compares: original and French block by block, and what changed in a
stale draft's original. Pure functions on sanitized HTML fragments.

Translation keeps the article's structure (translate checks it), so the n-th leaf block of
the French body is the translation of the n-th leaf block of the original.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

import lxml.html
from lxml import etree

from aggregator.errors import InvalidEditError
from aggregator.extract import sanitize, text_of
from aggregator.segment import CONTAINER_TAGS, inner_html, leaf_blocks, parse_fragment
from aggregator.store.snapshots import DraftDetail

MAX_TITLE_CHARACTERS = 500
DIFF_CONTEXT_BLOCKS = 1


@dataclass(frozen=True)
class BlockPair:
    index: int
    tag: str
    original_html: str  # inner HTML of the original block, sanitized ("" when unmatched)
    french_html: str  # inner HTML of the French block, sanitized ("" when unmatched)


@dataclass(frozen=True)
class DiffLine:
    kind: Literal["same", "removed", "added"]
    text: str


def _blocks(html: str) -> tuple[etree._Element, list[etree._Element]]:
    root = parse_fragment(sanitize(html))
    return root, list(leaf_blocks(root))


def block_pairs(original_html: str, french_html: str) -> list[BlockPair]:
    _, originals = _blocks(original_html)
    _, french = _blocks(french_html)
    pairs = []
    for index, (source, target) in enumerate(zip_longest(originals, french)):
        shown = target if target is not None else source
        pairs.append(
            BlockPair(
                index=index,
                tag=str(shown.tag),
                original_html=inner_html(source) if source is not None else "",
                french_html=inner_html(target) if target is not None else "",
            )
        )
    return pairs


def replace_block(body_html: str, index: int, new_inner_html: str) -> str:
    """The body with block ``index``'s content replaced; InvalidEditError if it cannot be."""
    root, blocks = _blocks(body_html)
    if not 0 <= index < len(blocks):
        raise InvalidEditError(
            f"block {index} does not exist: the draft has {len(blocks)} blocks (0 to "
            f"{len(blocks) - 1})"
        )
    cleaned = sanitize(new_inner_html)
    fragment = lxml.html.fragment_fromstring(f"<div>{cleaned}</div>")
    nested = sorted({str(e.tag) for e in fragment.iterdescendants() if e.tag in CONTAINER_TAGS})
    if nested:
        raise InvalidEditError(
            f"a block holds text and inline markup only, not <{'>, <'.join(nested)}>: "
            "edit the whole body to change the article's structure"
        )
    if not text_of(cleaned) and fragment.find(".//img") is None:
        raise InvalidEditError(
            f"block {index} would be empty: edit the whole body to remove a block"
        )
    block = blocks[index]
    tail = block.tail
    for child in list(block):
        block.remove(child)
    block.text = fragment.text
    for child in list(fragment):
        block.append(child)
    block.tail = tail
    return sanitize(inner_html(root))


def clean_title(title: str) -> str:
    cleaned = " ".join(title.split())
    if not cleaned:
        raise InvalidEditError("the title is empty")
    if len(cleaned) > MAX_TITLE_CHARACTERS:
        raise InvalidEditError(
            f"the title has {len(cleaned)} characters; at most {MAX_TITLE_CHARACTERS} are allowed"
        )
    return cleaned


def clean_body(body_html: str) -> str:
    cleaned = sanitize(body_html)
    if not text_of(cleaned):
        raise InvalidEditError("the body has no text left once sanitized")
    return cleaned


def current_source_html(detail: DraftDetail) -> str:
    """The original as it is now: the feed's new content when the article came from the
    feed; otherwise the text taken from the page (taken again on retranslation)."""
    if detail.full_text_source == "feed" and detail.feed_content_html:
        return sanitize(detail.feed_content_html, detail.draft.original_url)
    return detail.source_html


def source_changes(reviewed_html: str, current_html: str) -> list[DiffLine]:
    """What changed in the original, block by block, with one block of context."""
    before = [text_of(inner_html(b)) for b in _blocks(reviewed_html)[1]]
    after = [text_of(inner_html(b)) for b in _blocks(current_html)[1]]
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for group in matcher.get_grouped_opcodes(DIFF_CONTEXT_BLOCKS):
        for op, a1, a2, b1, b2 in group:
            if op == "equal":
                lines += [DiffLine("same", text) for text in before[a1:a2]]
                continue
            lines += [DiffLine("removed", text) for text in before[a1:a2]]
            lines += [DiffLine("added", text) for text in after[b1:b2]]
    return lines
