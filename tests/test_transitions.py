"""The rules of an entry's life, as tables: what each event does from each state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator import transitions
from aggregator.errors import InvalidTransitionError
from aggregator.models import DraftStatus, EntryState
from aggregator.transitions import EntryMove, Outcome

NOW = datetime(2025, 2, 12, 15, 0, tzinfo=UTC)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
REQUEUED = EntryMove(
    EntryState.NEW, due=True, fresh_start=True, clear_error=True, release_claim=True
)


@pytest.mark.parametrize(
    ("draft", "entry", "stale"),
    [
        (None, REQUEUED, False),  # never drafted: the new content is taken
        (DraftStatus.PENDING, REQUEUED, False),  # redrafted; work on the old content dropped
        (DraftStatus.APPROVED, None, True),  # stays published as reviewed, flagged stale
        (DraftStatus.REJECTED, None, False),  # a tombstone never comes back
        (DraftStatus.WITHDRAWN, None, False),
    ],
)
def test_a_changed_original(
    draft: DraftStatus | None, entry: EntryMove | None, stale: bool
) -> None:
    change = transitions.original_changed(draft)
    assert (change.entry, change.flag_stale) == (entry, stale)


A, P, R = DraftStatus.APPROVED, DraftStatus.PENDING, DraftStatus.REJECTED


@pytest.mark.parametrize(
    ("drafts", "entry"),
    [
        ((), REQUEUED),  # no draft yet
        ((A, A), None),  # every translation reviewed: each is flagged, the entry stays
        ((A, P), REQUEUED),  # one not reviewed yet: it is redrafted (the other stays)
        ((R, A), None),
        ((R, P), REQUEUED),
    ],
)
def test_a_changed_original_with_one_draft_per_language(
    drafts: tuple[DraftStatus, ...], entry: EntryMove | None
) -> None:
    assert transitions.entry_after_original_changed(drafts) == entry


@pytest.mark.parametrize(
    ("drafts", "expected"),
    [
        ({}, ("fr", "es")),  # new: every language
        ({"fr": A}, ("es",)),  # a language added to the feed, or one that failed
        ({"fr": A, "es": P}, ()),  # drafted: nothing to do until someone sends one back
        ({"fr": None, "es": P}, ("fr",)),  # sent back: that one only, never its sibling
        ({"fr": R, "es": None}, ("es",)),
    ],
)
def test_which_languages_an_entry_is_drafted_in(
    drafts: dict[str, DraftStatus | None], expected: tuple[str, ...]
) -> None:
    assert transitions.languages_to_draft(("fr", "es"), drafts) == expected


@pytest.mark.parametrize(
    ("outcome", "state", "clears_error"),
    [
        (Outcome.EXTRACTED, EntryState.EXTRACTED, True),
        (Outcome.SKIPPED, EntryState.SKIPPED, True),
        (Outcome.FAILED, None, False),  # retried later from where it was
        (Outcome.DRAFTED, EntryState.DRAFTED, True),
    ],
)
def test_a_stage_outcome(outcome: Outcome, state: EntryState | None, clears_error: bool) -> None:
    move = transitions.STAGE_OUTCOMES[outcome]
    assert (move.state, move.clear_error) == (state, clears_error)
    # A claim ends with the write that lands it, never by the rule (the claim fences it).
    assert not move.release_claim


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            EntryState.SKIPPED,
            EntryMove(
                EntryState.NEW, due=True, fresh_start=True, forget_text=True, clear_skip=True,
                release_claim=True,
            ),
        ),  # starts over from its page: the paywall may be gone
        (EntryState.NEW, EntryMove(None, due=True, release_claim=True)),
        (EntryState.EXTRACTED, EntryMove(None, due=True, release_claim=True)),
    ],
)  # fmt: skip
def test_an_editor_retries(state: EntryState, expected: EntryMove) -> None:
    assert transitions.retry(7, state) == expected


@pytest.mark.parametrize("state", [EntryState.NEW, EntryState.EXTRACTED, EntryState.SKIPPED])
def test_a_pasted_text_waits_for_translation(state: EntryState) -> None:
    move = transitions.pasted_text(7, state)
    assert move == EntryMove(
        EntryState.EXTRACTED, due=True, fresh_start=True, clear_error=True, clear_skip=True,
        release_claim=True,
    )  # fmt: skip


@pytest.mark.parametrize("rule", [transitions.retry, transitions.pasted_text])
def test_a_drafted_entry_is_neither_retried_nor_given_a_text(rule: object) -> None:
    with pytest.raises(InvalidTransitionError, match="entry 7 already has a draft"):
        rule(7, EntryState.DRAFTED)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("stale", "has_text", "state", "forgets_text"),
    [
        (False, True, EntryState.EXTRACTED, False),  # translated again from the same text
        (False, False, EntryState.NEW, False),
        (True, True, EntryState.NEW, True),  # the changed original is taken again first
        (True, False, EntryState.NEW, True),
    ],
)
def test_a_retranslation(
    stale: bool, has_text: bool, state: EntryState, forgets_text: bool
) -> None:
    move = transitions.retranslation(3, DraftStatus.APPROVED, stale=stale, has_text=has_text)
    assert (move.state, move.forget_text) == (state, forgets_text)
    assert move.due and move.fresh_start and move.clear_error


def test_a_rejected_draft_is_not_retranslated() -> None:
    with pytest.raises(InvalidTransitionError, match="draft 3 is rejected"):
        transitions.retranslation(3, DraftStatus.REJECTED, stale=False, has_text=True)


def test_entry_updates_are_limited_per_day() -> None:
    window, count = None, 0
    taken = []
    for minutes in range(0, 60 * 30, 30):  # a change every 30 min for 30 h
        now = NOW + minutes * MINUTE
        accepted, window, count = transitions.accept_entry_update(
            now, window_started_at=window, updates_in_window=count, limit=3
        )
        if accepted:
            taken.append(now)
    assert taken == [NOW, NOW + 30 * MINUTE, NOW + HOUR, NOW + 24 * HOUR,
                     NOW + 24 * HOUR + 30 * MINUTE, NOW + 25 * HOUR]  # fmt: skip


@pytest.mark.parametrize(
    ("review", "warnings", "flagged", "published"),
    [
        ("auto", (), False, True),
        ("auto", ("block 2: the engine returned it untranslated",), False, False),
        ("auto", (), True, False),  # an edit kept over a changed original: an editor looks
        ("manual", (), False, False),
    ],
)
def test_only_a_draft_with_nothing_to_look_at_goes_out_unreviewed(
    review: str, warnings: tuple[str, ...], flagged: bool, published: bool
) -> None:
    assert transitions.publishes_unreviewed(review, warnings, flagged) is published
