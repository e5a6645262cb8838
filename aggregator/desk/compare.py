"""What an editor compares: original and French block by block, and what changed in a
stale draft's original. Pure functions on sanitized HTML fragments.

Translation keeps the article's structure (translate checks it), so the n-th leaf block of
the French body is the translation of the n-th leaf block of the original.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

from aggregator.errors import InvalidEditError
from aggregator.extraction.extract import sanitize, text_of
from aggregator.extraction.fragment import inner_html
from aggregator.store.snapshots import DraftDetail
from aggregator.translation.kept import blocks_of

MAX_TITLE_CHARACTERS = 500
# Runs of white space a title is written with, but the no-break spaces of French typography
# (before « ? ! : ; », inside « guillemets », in 97,4 milliards), which stay as they are.
_TITLE_SPACES = re.compile(r"[^\S\u00a0\u202f\u2007]+")
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


def block_pairs(original_html: str, french_html: str) -> list[BlockPair]:
    _, originals = blocks_of(original_html)
    _, french = blocks_of(french_html)
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


def clean_title(title: str) -> str:
    cleaned = _TITLE_SPACES.sub(" ", title).strip()
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
    before = [text_of(inner_html(b)) for b in blocks_of(reviewed_html)[1]]
    after = [text_of(inner_html(b)) for b in blocks_of(current_html)[1]]
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
