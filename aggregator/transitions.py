"""What happens to an entry and its draft: the product's rules, as pure functions and tables.

The store persists what these decide (``EntryMove``) and decides nothing itself, so a rule
reads in one place and is tested as a table. No I/O and no clock: the caller passes ``now``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.errors import InvalidTransitionError
from aggregator.models import DraftStatus, EntryState

UPDATE_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class EntryMove:
    """An entry's change, as decided: the store writes exactly this.

    ``state`` None keeps the entry where it is. ``due`` makes it due now; ``fresh_start``
    forgets its failed attempts; ``forget_text`` drops the full text so the article is
    taken again; ``release_claim`` ends any claim, so work in flight on the old content
    cannot land.
    """

    state: EntryState | None
    due: bool = False
    fresh_start: bool = False
    clear_error: bool = False
    forget_text: bool = False
    clear_skip: bool = False
    release_claim: bool = False


class Outcome(enum.StrEnum):
    """What a stage of the pipeline made of an entry it held."""

    EXTRACTED = "extracted"  # full text and language known
    SKIPPED = "skipped"  # kept, not translated (a paywall, a language, a link post)
    FAILED = "failed"  # an attempt failed; retried later, in the same state
    DRAFTED = "drafted"  # a complete draft exists


STAGE_OUTCOMES: dict[Outcome, EntryMove] = {
    Outcome.EXTRACTED: EntryMove(EntryState.EXTRACTED, clear_error=True),
    Outcome.SKIPPED: EntryMove(EntryState.SKIPPED, clear_error=True),
    Outcome.FAILED: EntryMove(None),
    Outcome.DRAFTED: EntryMove(EntryState.DRAFTED, clear_error=True),
}

_REQUEUE_FROM_FEED = EntryMove(
    EntryState.NEW, due=True, fresh_start=True, clear_error=True, release_claim=True
)


@dataclass(frozen=True)
class OriginalChange:
    """What a changed original (a feed's entry with a new content hash) means."""

    entry: EntryMove | None  # None: the entry keeps its state (its draft was reviewed)
    flag_stale: bool = False  # an approved draft is marked: its original changed after review


ORIGINAL_CHANGES: dict[DraftStatus | None, OriginalChange] = {
    None: OriginalChange(_REQUEUE_FROM_FEED),  # no draft yet: take the new content
    DraftStatus.PENDING: OriginalChange(_REQUEUE_FROM_FEED),  # redrafted from the new content
    DraftStatus.APPROVED: OriginalChange(None, flag_stale=True),  # stays published as reviewed
    DraftStatus.REJECTED: OriginalChange(None),  # a tombstone never comes back
    DraftStatus.WITHDRAWN: OriginalChange(None),  # out of the feeds by an editor's choice
}


def original_changed(draft_status: DraftStatus | None) -> OriginalChange:
    return ORIGINAL_CHANGES[draft_status]


def entry_after_original_changed(statuses: Sequence[DraftStatus]) -> EntryMove | None:
    """What a changed original means for its entry, whose drafts (one per target language)
    have these statuses: taken again when none exists or one is not reviewed yet (only
    those are redrafted); else left as it is. Each draft's own fate is ``original_changed``."""
    for status in statuses or (None,):
        move = original_changed(status).entry
        if move is not None:
            return move
    return None


def languages_to_draft(
    wanted: Sequence[str], drafts: Mapping[str, DraftStatus | None]
) -> tuple[str, ...]:
    """Of the target languages an entry's feed wants, those to (re)draft now: the ones with
    no draft yet, or whose draft was sent back (None: an editor asked for a retranslation,
    or its original changed before review). Any other draft is left as it is: translating
    one language again never touches the others."""
    return tuple(language for language in wanted if drafts.get(language) is None)


def retry(entry_id: int, state: EntryState) -> EntryMove:
    """An editor's "retry": a skipped entry starts over from its full text (the paywall may
    be gone), a waiting one keeps what it has; either is due now, its backoff forgotten."""
    _refuse_drafted(entry_id, state, "retry")
    if state == EntryState.SKIPPED:
        return EntryMove(
            EntryState.NEW, due=True, fresh_start=True, forget_text=True, clear_skip=True,
            release_claim=True,
        )  # fmt: skip
    return EntryMove(None, due=True, release_claim=True)


def pasted_text(entry_id: int, state: EntryState) -> EntryMove:
    """The editor's own copy of the article becomes its full text: it waits for translation."""
    _refuse_drafted(entry_id, state, "translate from a pasted text")
    return EntryMove(
        EntryState.EXTRACTED, due=True, fresh_start=True, clear_error=True, clear_skip=True,
        release_claim=True,
    )  # fmt: skip


def retranslation(draft_id: int, status: DraftStatus, *, stale: bool, has_text: bool) -> EntryMove:
    """A draft sent back to translation: a stale draft's article is taken again first."""
    if status == DraftStatus.REJECTED:
        raise InvalidTransitionError(f"draft {draft_id} is rejected; it stays a tombstone")
    if stale or not has_text:
        return EntryMove(
            EntryState.NEW, due=True, fresh_start=True, clear_error=True, forget_text=stale
        )
    return EntryMove(EntryState.EXTRACTED, due=True, fresh_start=True, clear_error=True)


def _refuse_drafted(entry_id: int, state: EntryState, doing: str) -> None:
    if state == EntryState.DRAFTED:
        raise InvalidTransitionError(
            f"entry {entry_id} already has a draft, so there is nothing to {doing}; "
            "retranslate or edit its draft instead"
        )


def accept_entry_update(
    now: datetime,
    *,
    window_started_at: datetime | None,
    updates_in_window: int,
    limit: int,
) -> tuple[bool, datetime, int]:
    """May a changed entry be taken as an update now? -> (yes?, window start, updates in it).

    At most ``limit`` updates per entry per day: a feed that rewrites an entry on every
    fetch (a counter, a "last seen" line) cannot make it re-translated all day. A refused
    change is not lost: the entry keeps its old content hash, so the change is taken as soon
    as the window allows.
    """
    if window_started_at is None or now - window_started_at >= UPDATE_WINDOW:
        window_started_at, updates_in_window = now, 0
    if updates_in_window >= limit:
        return False, window_started_at, updates_in_window
    return True, window_started_at, updates_in_window + 1


def publishes_unreviewed(review: str, warnings: Sequence[str], flagged: bool) -> bool:
    """Does a new draft go out at once, without an editor? Only for a feed with
    ``review = "auto"``, and only a draft with nothing to look at: no warning, and no
    edit kept over a changed original (``flagged``). Every other draft waits for review.
    (A draft exists only when its translation is complete.)"""
    return review == "auto" and not warnings and not flagged
