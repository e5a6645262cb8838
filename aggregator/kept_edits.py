"""An editor's edits as kept over redrafts: the types the store persists, and the rules it is
given to place them (``EditRules``; ``aggregator.translation.kept`` is the implementation).

The store does not read HTML: whoever asks it to record a body edit or to redraft an edited
draft passes the rules in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol


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


def with_title(kept: list[KeptEdit], title: str, source_title: str) -> list[KeptEdit]:
    """The edits once the editor's title replaces any earlier title edit."""
    return [*(e for e in kept if e.kind != "title"), KeptEdit("title", None, title, source_title)]


class EditRules(Protocol):
    def record_body(
        self, kept: list[KeptEdit], old_body: str, new_body: str, source_html: str
    ) -> list[KeptEdit]:
        """The edits once this body edit is added, each against the original as it is now."""
        ...

    def corrections(
        self, source_html: str, machine_html: str, edited_html: str
    ) -> Iterable[tuple[str, str]]:
        """(source text, editor's text) of each block the editor rewrote: what the
        translation memory keeps as that block's preferred translation."""
        ...

    def reapply_edits(
        self,
        title: str,
        body_html: str,
        *,
        source_title: str,
        source_html: str,
        edits: list[KeptEdit],
    ) -> Redraft:
        """Machine output with the editor's edits put back (flagged where the original
        changed)."""
        ...
