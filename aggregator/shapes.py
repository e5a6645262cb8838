"""JSON shapes that the command line and the API print alike: one writer of each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregator.store import DraftView


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as every JSON output writes a moment."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def edits_json(draft: DraftView) -> dict[str, Any]:
    """What an editor changed in a draft and where its original changed since."""
    return {
        # Parts changed by an editor ("title", "block N" from 1, "body"): kept over redrafts.
        "edited": list(draft.edited),
        "edit_flags": [
            {
                "part": f.part,
                "index": f.index,
                "text": f.text,
                "old_source": f.old_source,
                "new_source": f.new_source,
                "flagged_at": iso(f.flagged_at),
            }
            for f in draft.flags
        ],
        "review_policy": "manual",
    }
