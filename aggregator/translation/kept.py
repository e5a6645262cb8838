"""An editor's edits against the machine's blocks: recorded against the original as it
is, put back where that original now is over every redraft. Pure functions on sanitized
HTML fragments; the store is given them (``kept_edits.EditRules``) to persist the result.

Translation keeps the article's structure (translate checks it), so the n-th leaf block of
the French body is the translation of the n-th leaf block of the original.
"""

from __future__ import annotations

import lxml.html
from lxml import etree

from aggregator.errors import InvalidEditError
from aggregator.extraction.extract import sanitize, text_of
from aggregator.extraction.fragment import inner_html
from aggregator.kept_edits import KeptEdit, Redraft
from aggregator.translation.segment import (
    CONTAINER_TAGS,
    editable_blocks,
    is_stand_in,
    parse_fragment,
    replace_content,
    serialize,
)


def corrections(source_html: str, machine_html: str, edited_html: str) -> list[tuple[str, str]]:
    """``translate.corrections``: what an edit teaches the memory. Imported when an edit is
    saved, so the review commands do not load the translation stack."""
    from aggregator.translation.translate import corrections as learned

    return learned(source_html, machine_html, edited_html)


def blocks_of(html: str) -> tuple[etree._Element, list[etree._Element]]:
    """The sanitized fragment and its blocks an editor edits one by one, in order."""
    root = parse_fragment(sanitize(html))
    return root, editable_blocks(root)  # images' alt and title texts last


def replace_block(body_html: str, index: int, new_inner_html: str) -> str:
    """The body with block ``index``'s content replaced; InvalidEditError if it cannot be."""
    root, blocks = blocks_of(body_html)
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


def same_source(a: str, b: str) -> bool:
    """Whitespace is not a change of the original."""
    return a.split() == b.split()


def block_sources(html: str) -> list[str]:
    """The inner HTML of each leaf block, sanitized: what a block edit is made against."""
    return [inner_html(block) for block in blocks_of(html)[1]]


def changed_blocks(old_body: str, new_body: str) -> list[tuple[int, str]] | None:
    """(index, new inner HTML) of each block that differs, or None when the article's
    structure changed (blocks added or removed): such an edit is kept as a whole body."""
    before, after = block_sources(old_body), block_sources(new_body)
    if len(before) != len(after):
        return None
    return [(i, new) for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]


def record_body(
    kept: list[KeptEdit], old_body: str, new_body: str, source_html: str
) -> list[KeptEdit]:
    """The edits once this body edit is added: each changed block is against the original
    as it is now, so saving a flagged block again settles its flag."""
    edits = list(kept)
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
