"""The one place an entry's change of state becomes columns.

``aggregator.transitions`` decides the move; this writes it, on the hot path's Core UPDATE
(``move_values``) or on a loaded row (``apply_move``), so both write the same columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregator.models import Entry
from aggregator.transitions import EntryMove


def move_values(move: EntryMove, now: datetime) -> dict[str, Any]:
    """The columns ``move`` changes, with ``updated_at``."""
    values: dict[str, Any] = {"updated_at": now}
    if move.state is not None:
        values["state"] = move.state
    if move.due:
        values["next_attempt_at"] = now
    if move.fresh_start:
        values["attempts"] = 0
    if move.clear_error:
        values["last_error"] = None
    if move.forget_text:
        values["full_html"] = None
    if move.clear_skip:
        values["skip_reason"] = None
    if move.release_claim:
        values["locked_until"] = None
        values["claimed_by"] = None
    return values


def apply_move(entry: Entry, move: EntryMove, now: datetime) -> None:
    for column, value in move_values(move, now).items():
        setattr(entry, column, value)
