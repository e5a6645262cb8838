"""An editor's edits, kept over every redraft (rows of ``draft_edits``).

Each edit is stored with the original text it was made against. A redraft (the original
changed, a retranslation, the changed original taken again) starts from the machine's
output and puts every edit back; an edit whose original changed is kept too, flagged with
the new original, so that nothing an editor wrote is ever replaced without their seeing it.
The pure part (which block goes where) is given by the caller (``kept_edits.EditRules``,
implemented by ``translation.kept``): the store reads no HTML.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from aggregator.kept_edits import EditRules, KeptEdit, Redraft, with_title
from aggregator.models import Draft, DraftEdit, DraftEvent, Entry
from aggregator.store.snapshots import EditFlag

FLAG_NOTE = (
    "edited by hand, and its original changed since: the edit is kept; compare it with "
    "the new original"
)


def flag_warning(part: str) -> str:
    return f"{part}: {FLAG_NOTE}"


def translated_source(entry: Entry) -> str:
    """The original as it was translated: what the French blocks line up with."""
    return entry.full_html or entry.content_html or entry.summary_html or ""


def kept_edits(draft: Draft) -> list[KeptEdit]:
    return [_kept(row) for row in draft.edits]


def _kept(row: DraftEdit) -> KeptEdit:
    return KeptEdit(
        kind=row.kind,  # type: ignore[arg-type]
        block=row.block,
        text=row.text,
        source=row.source,
        new_source=row.new_source,
    )


def edited_parts(draft: Draft) -> tuple[str, ...]:
    def order(edit: KeptEdit) -> tuple[int, int]:
        return ({"title": 0, "body": 1}.get(edit.kind, 2), edit.block or 0)

    return tuple(e.part for e in sorted(kept_edits(draft), key=order))


def edit_flags(draft: Draft) -> tuple[EditFlag, ...]:
    flags = []
    for row in draft.edits:
        if row.new_source is None or row.flagged_at is None:
            continue
        flags.append(
            EditFlag(
                part=_kept(row).part,
                index=row.block,
                text=row.text,
                old_source=row.source,
                new_source=row.new_source,
                flagged_at=row.flagged_at,
            )
        )
    return tuple(sorted(flags, key=lambda f: (f.index is not None, f.index or 0)))


def _store(
    session: Session, draft: Draft, edits: list[KeptEdit], actor: str, now: datetime
) -> None:
    """Replace the draft's edit rows with ``edits``, keeping who made each and when it was
    flagged; the draft's warnings name the flagged parts."""
    before = {(row.kind, row.text, row.source): row for row in draft.edits}
    rows = []
    for edit in edits:
        old = before.get((edit.kind, edit.text, edit.source))
        flagged_at = None
        if edit.new_source is not None:
            same_flag = old is not None and old.new_source == edit.new_source
            flagged_at = old.flagged_at if same_flag and old is not None else now
        rows.append(
            DraftEdit(
                kind=edit.kind,
                block=edit.block,
                text=edit.text,
                source=edit.source,
                new_source=edit.new_source,
                flagged_at=flagged_at,
                actor=old.actor if old is not None else actor,
                updated_at=old.updated_at if old is not None and old.block == edit.block else now,
            )
        )
    draft.edits = rows
    session.flush()
    notes = [flag_warning(e.part) for e in edits if e.new_source is not None]
    draft.warnings = [w for w in draft.warnings or () if not w.endswith(FLAG_NOTE)] + notes


def record(
    session: Session,
    draft: Draft,
    *,
    actor: str,
    now: datetime,
    title: str | None,
    old_body: str | None,
    new_body: str | None,
    rules: EditRules | None,
) -> None:
    """Remember what an editor just changed, against the original as it is now. A title
    needs no rules; a body edit does (its blocks are lined up with the original's)."""
    entry = draft.entry
    edits = kept_edits(draft)
    if title is not None:
        edits = with_title(edits, title, entry.title)
    if old_body is not None and new_body is not None:
        edits = needed(rules, "a body edit").record_body(
            edits, old_body, new_body, translated_source(entry)
        )
    _store(session, draft, edits, actor, now)


def needed(rules: EditRules | None, doing: str) -> EditRules:
    """The rules, or an error before anything an editor wrote could be lost."""
    if rules is None:
        raise ValueError(f"{doing} needs the edit rules (aggregator.translation.kept)")
    return rules


def settle(session: Session, draft: Draft, parts: set[str], actor: str, now: datetime) -> list[str]:
    """The editor looked at these flagged parts and keeps their text: each is now against
    the new original. Returns the parts settled."""
    settled = []
    edits = []
    for edit in kept_edits(draft):
        if edit.new_source is not None and edit.part in parts:
            settled.append(edit.part)
            edit = KeptEdit(edit.kind, edit.block, edit.text, edit.new_source)
        edits.append(edit)
    if settled:
        _store(session, draft, edits, actor, now)
    return settled


def flagged_parts(draft: Draft) -> set[str]:
    return {e.part for e in kept_edits(draft) if e.new_source is not None}


def redraft(
    session: Session, draft: Draft, now: datetime, rules: EditRules | None
) -> Redraft | None:
    """Put the editor's edits back over the machine output the draft now holds; None when
    it has none. Audit events say where an edit was kept over a changed original."""
    if not draft.edits:
        return None
    entry = draft.entry
    before = {e.part: e.new_source for e in kept_edits(draft)}
    result = needed(rules, "redrafting an edited draft").reapply_edits(
        draft.title,
        draft.body_html,
        source_title=entry.title,
        source_html=translated_source(entry),
        edits=kept_edits(draft),
    )
    draft.title, draft.body_html = result.title, result.body_html
    _store(session, draft, result.edits, "aggregator", now)
    kept = [e.part for e in result.edits if e.new_source is None]
    if kept:
        detail = f"edits put back over the new translation: {', '.join(kept)}"
        _event(session, draft, now, detail)
    for edit in result.edits:
        if edit.new_source is None:
            continue
        if before.get(edit.part) == edit.new_source:
            continue  # already flagged with this original
        detail = f"edit kept on {edit.part}, source changed"
        _event(session, draft, now, detail)
    return result


def reapply_in(session: Session, draft_id: int, now: datetime, rules: EditRules | None) -> None:
    """``redraft`` for a draft just rewritten by Core statements in this session."""
    draft = session.get(Draft, draft_id, populate_existing=True)
    if draft is not None and draft.edits:
        redraft(session, draft, now, rules)


def _event(session: Session, draft: Draft, now: datetime, detail: str) -> None:
    session.add(
        DraftEvent(draft_id=draft.id, action="edit-kept", actor="aggregator", at=now, detail=detail)
    )
