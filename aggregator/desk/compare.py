"""What an editor compares: original and French block by block, and what changed in a
stale draft's original. Pure functions on sanitized HTML fragments.

Translation keeps the article's structure (translate checks it), so the n-th leaf block of
the French body is the translation of the n-th leaf block of the original.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from itertools import zip_longest
from typing import TYPE_CHECKING, Literal

import lxml.html
from lxml import etree

from aggregator.errors import InvalidEditError
from aggregator.extraction.extract import sanitize, text_of
from aggregator.translation.segment import (
    CONTAINER_TAGS,
    editable_blocks,
    inner_html,
    is_stand_in,
    parse_fragment,
    replace_content,
    serialize,
)

if TYPE_CHECKING:  # the store imports this module: no import of the store at run time
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
    return root, editable_blocks(root)  # images' alt and title texts last


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
    if is_stand_in(block):  # an image's alt or title: its text goes to the attribute
        replace_content(block, cleaned)
        return sanitize(serialize(root))
    tail = block.tail
    for child in list(block):
        block.remove(child)
    block.text = fragment.text
    for child in list(fragment):
        block.append(child)
    block.tail = tail
    return sanitize(serialize(root))


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


# ---------------------------------------------------------------- edits kept over redrafts


@dataclass(frozen=True)
class KeptEdit:
    """An editor's edit as stored: ``source`` is the original it was made against; after
    a redraft, ``new_source`` is the original as it is now when that changed (a flag)."""

    kind: Literal["title", "block", "body"]
    block: int | None
    text: str
    source: str
    new_source: str | None = None

    @property
    def part(self) -> str:
        """How the desk, the audit trail and ``drafts show`` name it ("block N" from 1)."""
        return (
            f"block {self.block + 1}"
            if self.kind == "block" and self.block is not None
            else (self.kind)
        )


@dataclass(frozen=True)
class Redraft:
    title: str
    body_html: str
    edits: list[KeptEdit]  # each placed where it now is; flagged ones carry new_source


def same_source(a: str, b: str) -> bool:
    """Whitespace is not a change of the original."""
    return a.split() == b.split()


def block_sources(html: str) -> list[str]:
    """The inner HTML of each leaf block, sanitized: what a block edit is made against."""
    return [inner_html(block) for block in _blocks(html)[1]]


def changed_blocks(old_body: str, new_body: str) -> list[tuple[int, str]] | None:
    """(index, new inner HTML) of each block that differs, or None when the article's
    structure changed (blocks added or removed): such an edit is kept as a whole body."""
    before, after = block_sources(old_body), block_sources(new_body)
    if len(before) != len(after):
        return None
    return [(i, new) for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]


def record_edits(
    kept: list[KeptEdit],
    *,
    old_body: str | None,
    new_body: str | None,
    title: str | None,
    source_title: str,
    source_html: str,
) -> list[KeptEdit]:
    """The edits once this change is added: each part is against the original as it is
    now, so saving a flagged part again settles its flag."""
    edits = list(kept)
    if title is not None:
        edits = [e for e in edits if e.kind != "title"]
        edits.append(KeptEdit("title", None, title, source_title))
    if new_body is None or old_body is None:
        return edits
    whole = next((e for e in edits if e.kind == "body"), None)
    blocks = changed_blocks(old_body, new_body)
    if whole is not None or blocks is None:
        # The structure was changed by hand: the blocks no longer line up with the
        # original's, so the whole body is the edit.
        rest = [e for e in edits if e.kind == "title"]
        return [*rest, KeptEdit("body", None, sanitize(new_body), sanitize(source_html))]
    sources = block_sources(source_html)
    for index, html in blocks:
        edits = [e for e in edits if not (e.kind == "block" and e.block == index)]
        source = sources[index] if index < len(sources) else ""
        edits.append(KeptEdit("block", index, html, source))
    return edits


def reapply_edits(
    title: str, body_html: str, *, source_title: str, source_html: str, edits: list[KeptEdit]
) -> Redraft:
    """Machine output with the editor's edits put back.

    An edit whose original is unchanged is re-applied as it is, where that original now is
    (a paragraph added above it moves it down). An edit whose original changed is kept
    too, at its place, and flagged with the new original for the editor to compare.
    """
    placed: list[KeptEdit] = []
    sources = block_sources(source_html)
    taken: set[int] = set()
    for edit in edits:
        if edit.kind == "title":
            title = edit.text
            changed = not same_source(edit.source, source_title)
            placed.append(
                KeptEdit("title", None, edit.text, edit.source, _if(changed, source_title))
            )
        elif edit.kind == "body":
            body_html = edit.text
            current = sanitize(source_html)
            changed = not same_source(edit.source, current)
            placed.append(KeptEdit("body", None, edit.text, edit.source, _if(changed, current)))
    if any(e.kind == "body" for e in placed):
        return Redraft(title, body_html, placed)
    for edit in (e for e in edits if e.kind == "block" and e.block is not None):
        assert edit.block is not None
        matches = [
            i for i, s in enumerate(sources) if i not in taken and same_source(s, edit.source)
        ]
        if matches:
            index: int | None = min(matches, key=lambda i: abs(i - (edit.block or 0)))
            new_source = None
        else:
            index = edit.block if edit.block < len(sources) and edit.block not in taken else None
            new_source = sources[index] if index is not None else ""
        if index is not None:
            try:
                body_html = replace_block(body_html, index, edit.text)
            except InvalidEditError:
                new_source = sources[index]  # cannot go back in: kept, and flagged
            taken.add(index)
        placed.append(
            KeptEdit("block", edit.block if index is None else index, edit.text, edit.source,
                     new_source)
        )  # fmt: skip
    return Redraft(title, body_html, placed)


def _if(changed: bool, value: str) -> str | None:
    return value if changed else None
