"""Drafts: review actions, their audit trail, and what is published.

Every review action names the version of the draft its author saw. The write is a
compare-and-set on ``drafts.version`` (``UPDATE … WHERE version = seen``), so of two editors
acting on the same version, on SQLite or PostgreSQL, in one process or several, exactly one
wins and the other gets a ``ConflictError`` that says who changed the draft.

What the public sees is the published copy (``published_*``), written at approval: a draft
sent back to translation, or redrafted because its original changed, stays published as it
was approved until its new version is approved, or until it is withdrawn. The editor's
edits are kept over every redraft (``store.edits``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Required, TypedDict, Unpack

from sqlalchemy import func, literal, select, update
from sqlalchemy.orm import Session, joinedload

from aggregator import transitions
from aggregator.errors import ConflictError, InvalidTransitionError
from aggregator.kept_edits import EditRules
from aggregator.models import Draft, DraftEvent, DraftStatus, Entry, Feed
from aggregator.store import edits as kept
from aggregator.store.base import AnySelect, StoreBase, row_or_missing, view_of
from aggregator.store.edits import needed
from aggregator.store.memory import learn_from_edit
from aggregator.store.moves import apply_move
from aggregator.store.snapshots import (
    DraftDetail,
    DraftEventView,
    DraftView,
)

# An approved draft's warning while its original has changed since it was reviewed.
SOURCE_CHANGED_NOTE = "the original article changed after review"


def flag_stale(draft: Draft, now: datetime) -> None:
    """The original changed after review (``transitions.original_changed``)."""
    if SOURCE_CHANGED_NOTE not in draft.warnings:
        draft.warnings = [*draft.warnings, SOURCE_CHANGED_NOTE]
    draft.source_changed_at = now


def unflag_stale(draft: Draft) -> None:
    draft.source_changed_at = None
    draft.warnings = [w for w in draft.warnings or () if w != SOURCE_CHANGED_NOTE]


class Action(TypedDict, total=False):
    """Who acts on a draft, when, and on which version (None: whatever the version)."""

    actor: Required[str]
    now: Required[datetime]
    expected_version: int | None


class Review(Action, total=False):
    """An approval or rejection, and whether the credit names the reviewer."""

    named: bool


# Who publishes the drafts of a feed with ``review = "auto"``, in the audit trail.
AUTO_PUBLISHER = "aggregator"
# From these a draft may be approved or rejected (a withdrawn one may be published again).
REVIEWABLE = (DraftStatus.PENDING, DraftStatus.WITHDRAWN)
IS_PUBLISHED = Draft.published_approved_at.is_not(None)
# The feeds print dates to the microsecond (``publish.rfc3339``): the smallest step apart.
PUBLICATION_STEP = timedelta(microseconds=1)
# What a DraftView reads beside the draft, in the same query (not one query per draft),
# without the entry's three copies of the article, which no view shows.
_WITH_ENTRY_AND_FEED = (
    joinedload(Draft.entry)
    .defer(Entry.summary_html)
    .defer(Entry.content_html)
    .defer(Entry.full_html)
    .joinedload(Entry.feed)
)


class DraftStore(StoreBase):
    # ------------------------------------------------------------ reading

    def list_drafts(
        self, status: DraftStatus | None = None, *, language: str | None = None
    ) -> list[DraftView]:
        """Drafts in ``status`` and into ``language`` (None: any), newest first."""
        with self.session() as session:
            query = (
                select(Draft)
                .options(_WITH_ENTRY_AND_FEED)
                .order_by(Draft.created_at.desc(), Draft.id.desc())
            )
            query = _drafts_where(query, status, language)
            return [draft_view(d) for d in session.scalars(query)]

    def draft_summaries(
        self, status: DraftStatus | None = None, *, language: str | None = None
    ) -> list[DraftView]:
        """``list_drafts`` without the bodies (``body_html`` is empty): what a list of drafts
        shows, read as plain rows (a thousand drafts are read in a blink)."""
        query = _SUMMARIES.order_by(Draft.created_at.desc(), Draft.id.desc())
        query = _drafts_where(query, status, language)
        with self.session() as session:
            return [
                DraftView(**{**row._mapping, "warnings": tuple(row.warnings or ())})
                for row in session.execute(query)
            ]

    def review_queue(self, *, language: str | None = None) -> list[DraftView]:
        """What waits for an editor (into ``language`` only, when given): pending drafts,
        oldest first, then stale approved ones."""
        with self.session() as session:
            pending = session.scalars(
                _drafts_where(select(Draft), DraftStatus.PENDING, language).order_by(
                    Draft.created_at, Draft.id
                )
            )
            stale = session.scalars(
                _drafts_where(select(Draft), DraftStatus.APPROVED, language)
                .where(Draft.source_changed_at.is_not(None))
                .order_by(Draft.source_changed_at, Draft.id)
            )
            views = [draft_view(d) for d in pending]
            return views + [v for v in map(draft_view, stale) if v.stale]

    def draft_counts(self) -> dict[str, int]:
        with self.session() as session:
            rows = session.execute(select(Draft.status, func.count()).group_by(Draft.status))
            counts = {status.value: 0 for status in DraftStatus}
            counts.update({status.value: n for status, n in rows.all()})
            return counts

    def get_draft(self, draft_id: int) -> DraftView:
        with self.session() as session:
            return draft_view(self._draft(session, draft_id), with_edits=True)

    def get_draft_detail(self, draft_id: int) -> DraftDetail:
        with self.session() as session:
            draft = self._draft(session, draft_id)
            entry = draft.entry
            return DraftDetail(
                draft=draft_view(draft, with_edits=True),
                source_html=entry.full_html or entry.content_html or entry.summary_html or "",
                reviewed_source_html=draft.reviewed_source_html,
                feed_content_html=entry.content_html or entry.summary_html,
                full_text_source=entry.full_text_source,
                events=tuple(_event_view(e, draft.title) for e in draft.events),
                translations=tuple(
                    (other.target_language, other.id, other.status)
                    for other in entry.drafts
                    if other.id != draft.id
                ),
            )

    def recent_events(self, limit: int = 100) -> list[DraftEventView]:
        with self.session() as session:
            rows = session.execute(
                select(DraftEvent, Draft.title)
                .join(Draft)
                .order_by(DraftEvent.at.desc(), DraftEvent.id.desc())
                .limit(limit)
            )
            return [_event_view(event, title) for event, title in rows.all()]

    # ------------------------------------------------------------ review actions

    def approve(self, draft_id: int, **review: Unpack[Review]) -> DraftView:
        """``named=False``: ``actor`` only goes to the audit trail (say "cli (user root)")
        and the draft names no reviewer, so its credit line prints no name."""
        return self._transition(draft_id, DraftStatus.APPROVED, **review)

    def publish_unreviewed(self, draft_id: int, *, now: datetime) -> DraftView:
        """A draft of a feed with ``review = "auto"``, published at once by the editor's own
        approval, with nobody named and marked as unreviewed: its credit line says so, the
        desk shows it, and an editor withdraws it as any published draft."""
        return self._transition(
            draft_id, DraftStatus.APPROVED, actor=AUTO_PUBLISHER, now=now, named=False,
            unreviewed=True,
        )  # fmt: skip

    def reject(self, draft_id: int, **review: Unpack[Review]) -> DraftView:
        return self._transition(draft_id, DraftStatus.REJECTED, **review)

    def _transition(
        self,
        draft_id: int,
        target: DraftStatus,
        *,
        actor: str,
        now: datetime,
        expected_version: int | None = None,
        named: bool = True,
        unreviewed: bool = False,
    ) -> DraftView:
        with self.session() as session:
            draft = self._draft(session, draft_id)
            _check_version(session, draft, expected_version)
            if draft.status == target:
                return draft_view(draft)
            if draft.status not in REVIEWABLE:
                raise InvalidTransitionError(
                    f"draft {draft_id} is {draft.status.value}; only a pending draft can be "
                    f"{'approved' if target == DraftStatus.APPROVED else 'rejected'}"
                )
            if target == DraftStatus.REJECTED and draft.published_approved_at is not None:
                raise InvalidTransitionError(
                    f"draft {draft_id} has a published version (approved "
                    f"{draft.published_approved_at:%Y-%m-%d %H:%M} UTC): withdraw it to take "
                    "it out of the feeds, or approve the new version"
                )
            _bump_version(session, draft)
            if target == DraftStatus.APPROVED:
                now = _publication_moment(session, draft, now)
            draft.status = target
            draft.reviewed_by = actor if named else None
            draft.updated_at = now
            detail = None
            if target == DraftStatus.APPROVED:
                draft.approved_at = now
                draft.reviewed_source_html = _source_as_reviewed(draft.entry)
                unflag_stale(draft)
                # Approving is the editor's word on the flagged edits too: they stay.
                settled = kept.settle(session, draft, kept.flagged_parts(draft), actor, now)
                if settled:
                    detail = "approved with the edits kept over a changed original: "
                    detail += ", ".join(settled)
                if unreviewed:
                    detail = 'published at once, unreviewed (the feed has review = "auto")'
                _publish(draft, now)
                draft.auto_published = unreviewed
            _audit(session, draft, target.value, actor, now, detail)
            return draft_view(draft)

    def withdraw(
        self, draft_id: int, *, actor: str, now: datetime, expected_version: int | None = None
    ) -> DraftView:
        """Take a published article out of the feeds; its page then answers 410 Gone."""
        with self.session() as session:
            draft = self._draft(session, draft_id)
            _check_version(session, draft, expected_version)
            if draft.published_approved_at is None:
                if draft.status == DraftStatus.WITHDRAWN:
                    return draft_view(draft)
                raise InvalidTransitionError(
                    f"draft {draft_id} is {draft.status.value} and not published; only a "
                    "published draft can be withdrawn"
                )
            _bump_version(session, draft)
            approved_at = draft.published_approved_at
            draft.published_title = draft.published_body_html = draft.published_by = None
            draft.published_approved_at = None
            draft.auto_published = False
            draft.withdrawn_at = now
            if draft.status == DraftStatus.APPROVED:
                draft.status = DraftStatus.WITHDRAWN
                unflag_stale(draft)
            draft.updated_at = now
            detail = (
                f"taken out of the feeds (published since {approved_at:%Y-%m-%d %H:%M} UTC); "
                f"/articles/{draft.id} answers 410 Gone"
            )
            _audit(session, draft, "withdrawn", actor, now, detail)
            return draft_view(draft)

    def edit(
        self,
        draft_id: int,
        *,
        title: str | None = None,
        body_html: str | None = None,
        actor: str,
        now: datetime,
        detail: str | None = None,
        confirm: Iterable[str] = (),
        expected_version: int | None = None,
        edit_rules: EditRules | None = None,
    ) -> DraftView:
        """Change the French title or body; ``detail`` says what for the audit trail.

        Each changed part is recorded as the editor's edit, kept over later redrafts.
        ``confirm`` names the parts the editor saved ("title", "block N"): a flagged one
        among them is settled even when its text is unchanged. ``edit_rules``
        (``translation.kept``) line a body edit up with the original's blocks, and each
        block the editor rewrote becomes the memory's translation of it: a body edit
        without them is refused.
        """
        with self.session() as session:
            draft = self._draft(session, draft_id)
            _check_version(session, draft, expected_version)
            if draft.status == DraftStatus.REJECTED:
                raise InvalidTransitionError(f"draft {draft_id} is rejected and cannot be edited")
            changed = []
            if title is not None and title != draft.title:
                changed.append("title")
            if body_html is not None and body_html != draft.body_html:
                changed.append("body")
            confirmed = set(confirm) & kept.flagged_parts(draft)
            if not changed and not confirmed:
                return draft_view(draft, with_edits=True)
            _bump_version(session, draft)
            old_body = draft.body_html
            if title is not None:
                draft.title = title
            if body_html is not None and "body" in changed:
                learn_from_edit(session, draft, body_html, now, needed(edit_rules, "a body edit"))
                draft.body_html = body_html
            kept.record(
                session,
                draft,
                actor=actor,
                now=now,
                title=title if "title" in changed else None,
                old_body=old_body if "body" in changed else None,
                new_body=body_html if "body" in changed else None,
                rules=edit_rules,
            )
            settled = kept.settle(session, draft, confirmed, actor, now)
            if draft.status == DraftStatus.APPROVED:
                # The editor corrects the live article: the correction is published at once.
                draft.published_title, draft.published_body_html = draft.title, draft.body_html
                now = _publication_moment(session, draft, now)
            draft.updated_at = now
            what = detail or ", ".join(changed)
            if settled:
                note = f"kept against the changed original: {', '.join(settled)}"
                what = f"{what}; {note}" if what else note
            _audit(session, draft, "edited", actor, now, what)
            return draft_view(draft, with_edits=True)

    def request_retranslation(
        self, draft_id: int, *, actor: str, now: datetime, expected_version: int | None = None
    ) -> DraftView:
        """Send the draft's entry back to translation; the draft becomes pending.

        A stale draft's article is taken again (feed or page) before it is translated, so
        the new draft follows the changed original.
        """
        with self.session() as session:
            draft = self._draft(session, draft_id)
            _check_version(session, draft, expected_version)
            stale = draft_view(draft).stale
            entry = draft.entry
            move = transitions.retranslation(
                draft_id, draft.status, stale=stale, has_text=bool(entry.full_html)
            )
            _bump_version(session, draft)
            # The published copy, if any, stays in the feeds until the new version is approved.
            draft.status = DraftStatus.PENDING
            draft.approved_at = None
            draft.updated_at = now
            draft.source_changed_at = None
            draft.redraft_requested = True  # this one: the entry's other languages stay
            apply_move(entry, move, now)
            detail = "the changed original is taken again" if stale else None
            _audit(session, draft, "retranslate", actor, now, detail)
            return draft_view(draft)

    def acknowledge_source_change(
        self, draft_id: int, current_source_html: str, **action: Unpack[Action]
    ) -> DraftView:
        """The editor looked at what changed in the original and keeps the translation."""
        actor, now = action["actor"], action["now"]
        with self.session() as session:
            draft = self._draft(session, draft_id)
            _check_version(session, draft, action.get("expected_version"))
            if not draft_view(draft).stale:
                raise InvalidTransitionError(
                    f"draft {draft_id} is not stale: its original has not changed since approval"
                )
            _bump_version(session, draft)
            draft.reviewed_source_html = current_source_html
            unflag_stale(draft)
            draft.updated_at = now
            detail = "the change of the original was reviewed; the translation stays"
            _audit(session, draft, "acknowledged", actor, now, detail)
            return draft_view(draft)

    @staticmethod
    def _draft(session: Session, draft_id: int) -> Draft:
        return row_or_missing(session, Draft, draft_id, "draft")


def _drafts_where(query: AnySelect, status: DraftStatus | None, language: str | None) -> AnySelect:
    if status is not None:
        query = query.where(Draft.status == status)
    if language is not None:
        query = query.where(Draft.target_language == language)
    return query


def _source_as_reviewed(entry: Entry) -> str | None:
    """What a later change of the original is compared with: the feed's content when the
    article came from the feed (so the same boilerplate is on both sides), else the text
    taken from the page."""
    if entry.full_text_source == "feed" and entry.content_html:
        return entry.content_html
    return entry.full_html


def _publication_moment(session: Session, draft: Draft, now: datetime) -> datetime:
    """``now``, or just after the latest date the feeds show if that is not earlier: every
    published article gets its own ``atom:updated`` (the W3C validator warns on two equal
    ones) in the order of approval, even when one command approves several at one instant
    or the clock stepped back."""
    latest = session.scalar(
        select(func.max(Draft.updated_at)).where(IS_PUBLISHED, Draft.id != draft.id)
    )
    if latest is not None and latest >= now:
        return latest + PUBLICATION_STEP
    return now


def _publish(draft: Draft, now: datetime) -> None:
    """The approved version becomes what the feeds and the article page serve."""
    draft.published_title, draft.published_body_html = draft.title, draft.body_html
    draft.published_approved_at, draft.published_by = now, draft.reviewed_by
    draft.withdrawn_at = None


def _audit(
    session: Session,
    draft: Draft,
    action: str,
    actor: str,
    now: datetime,
    detail: str | None = None,
) -> None:
    """One line of the draft's audit trail: who did what, and when."""
    session.add(DraftEvent(draft_id=draft.id, action=action, actor=actor, at=now, detail=detail))


def _check_version(session: Session, draft: Draft, expected: int | None) -> None:
    if expected is not None and expected != draft.version:
        raise ConflictError(_conflict_message(session, draft, expected))


def _bump_version(session: Session, draft: Draft) -> None:
    """Compare-and-set: the write goes through only if nobody changed the draft since it was
    read (the row is locked from here to the commit)."""
    seen = draft.version
    result = session.execute(
        update(Draft)
        .where(Draft.id == draft.id, Draft.version == seen)
        .values(version=seen + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        session.expire(draft)
        raise ConflictError(_conflict_message(session, draft, seen))
    draft.version = seen + 1


def _conflict_message(session: Session, draft: Draft, seen: int) -> str:
    last = session.scalars(
        select(DraftEvent).where(DraftEvent.draft_id == draft.id).order_by(DraftEvent.id.desc())
    ).first()
    who = (
        f" by {last.actor} ({last.action}, {last.at:%Y-%m-%d %H:%M:%S} UTC)"
        if last is not None
        else ""
    )
    return (
        f"draft {draft.id} was changed{who} after you loaded it: you sent version {seen}, "
        f"it is now at version {draft.version}. Nothing was saved; reload the draft and "
        f"apply your change again."
    )


def _event_view(event: DraftEvent, title: str) -> DraftEventView:
    return view_of(DraftEventView, event, draft_title=title)


# A DraftView's fields as columns: the draft's own, then its entry's and feed's.
_SUMMARIES = (
    select(
        *(
            getattr(Draft, f.name).label(f.name)
            for f in fields(DraftView)
            if f.name in Draft.__table__.c and f.name != "body_html"
        ),
        literal("").label("body_html"),
        Entry.title.label("original_title"),
        func.coalesce(Entry.permalink, Entry.url).label("original_url"),
        Entry.author.label("author"),
        Entry.published_at.label("published_at"),
        Feed.name.label("feed"),
        Feed.slug.label("feed_slug"),
        Feed.url.label("feed_url"),
        Feed.title.label("feed_title"),
        Feed.site_url.label("feed_site_url"),
        func.coalesce(Entry.source_updated_at, Entry.published_at, Entry.created_at).label(
            "feed_updated_at"
        ),
        Draft.published_approved_at.is_not(None).label("published"),
    )
    .join(Entry, Draft.entry_id == Entry.id)
    .join(Feed, Entry.feed_id == Feed.id)
)


def draft_view(draft: Draft, *, with_edits: bool = False) -> DraftView:
    """A draft as it leaves the store: with its entry's and feed's fields (``with_edits``:
    and what an editor changed)."""
    entry = draft.entry
    feed = entry.feed
    return view_of(
        DraftView,
        draft,
        original_title=entry.title,
        original_url=entry.permalink or entry.url,
        author=entry.author,
        published_at=entry.published_at,
        feed=feed.name,
        feed_slug=feed.slug,
        feed_url=feed.url,
        feed_title=feed.title,
        feed_site_url=feed.site_url,
        # When the original feed last changed this entry: stable between polls, unlike the
        # feed's last successful check.
        feed_updated_at=entry.source_updated_at or entry.published_at or entry.created_at,
        warnings=tuple(draft.warnings or ()),
        published=draft.published_approved_at is not None,
        edited=kept.edited_parts(draft) if with_edits else (),
        flags=kept.edit_flags(draft) if with_edits else (),
    )
