"""Drafts: review actions, their audit trail, and what is published."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator.errors import InvalidTransitionError, NotFoundError
from aggregator.models import Draft, DraftEvent, DraftStatus, Entry, EntryState, Feed
from aggregator.store.base import StoreBase
from aggregator.store.snapshots import (
    DraftView,
)


class DraftStore(StoreBase):
    def list_drafts(self, status: DraftStatus | None = None) -> list[DraftView]:
        with self.session() as session:
            query = select(Draft).order_by(Draft.created_at.desc(), Draft.id.desc())
            if status is not None:
                query = query.where(Draft.status == status)
            return [_draft_view(d) for d in session.scalars(query)]

    def get_draft(self, draft_id: int) -> DraftView:
        with self.session() as session:
            return _draft_view(self._draft(session, draft_id))

    def published(self, limit: int, *, feed_slug: str | None = None) -> list[DraftView]:
        """Approved drafts, newest approval first."""
        with self.session() as session:
            query = select(Draft).where(Draft.status == DraftStatus.APPROVED)
            if feed_slug is not None:
                query = query.join(Entry).join(Feed).where(Feed.slug == feed_slug)
            query = query.order_by(Draft.approved_at.desc(), Draft.id.desc()).limit(limit)
            return [_draft_view(d) for d in session.scalars(query)]

    def feed_slugs(self) -> dict[str, str]:
        with self.session() as session:
            return dict(session.execute(select(Feed.slug, Feed.name)).all())

    def approve(self, draft_id: int, *, actor: str, now: datetime) -> DraftView:
        return self._transition(draft_id, DraftStatus.APPROVED, actor=actor, now=now)

    def reject(self, draft_id: int, *, actor: str, now: datetime) -> DraftView:
        return self._transition(draft_id, DraftStatus.REJECTED, actor=actor, now=now)

    def _transition(
        self, draft_id: int, target: DraftStatus, *, actor: str, now: datetime
    ) -> DraftView:
        with self.session() as session:
            draft = self._draft(session, draft_id)
            if draft.status == target:
                return _draft_view(draft)
            if draft.status != DraftStatus.PENDING:
                raise InvalidTransitionError(
                    f"draft {draft_id} is {draft.status.value}; only a pending draft can be "
                    f"{'approved' if target == DraftStatus.APPROVED else 'rejected'}"
                )
            draft.status = target
            draft.reviewed_by = actor
            draft.updated_at = now
            draft.version += 1
            if target == DraftStatus.APPROVED:
                draft.approved_at = now
            session.add(DraftEvent(draft_id=draft.id, action=target.value, actor=actor, at=now))
            return _draft_view(draft)

    def edit(
        self,
        draft_id: int,
        *,
        actor: str,
        now: datetime,
        title: str | None = None,
        body_html: str | None = None,
    ) -> DraftView:
        with self.session() as session:
            draft = self._draft(session, draft_id)
            if draft.status == DraftStatus.REJECTED:
                raise InvalidTransitionError(f"draft {draft_id} is rejected and cannot be edited")
            changed = []
            if title is not None and title != draft.title:
                draft.title = title
                changed.append("title")
            if body_html is not None and body_html != draft.body_html:
                draft.body_html = body_html
                changed.append("body")
            if changed:
                draft.updated_at = now
                draft.version += 1
                session.add(
                    DraftEvent(
                        draft_id=draft.id,
                        action="edited",
                        actor=actor,
                        at=now,
                        detail=", ".join(changed),
                    )
                )
            return _draft_view(draft)

    def request_retranslation(self, draft_id: int, *, actor: str, now: datetime) -> DraftView:
        """Send the draft's entry back to the translation stage; the draft becomes pending."""
        with self.session() as session:
            draft = self._draft(session, draft_id)
            if draft.status == DraftStatus.REJECTED:
                raise InvalidTransitionError(f"draft {draft_id} is rejected; it stays a tombstone")
            draft.status = DraftStatus.PENDING
            draft.approved_at = None
            draft.updated_at = now
            draft.version += 1
            entry = draft.entry
            entry.state = EntryState.EXTRACTED if entry.full_html else EntryState.NEW
            entry.next_attempt_at = now
            entry.attempts = 0
            entry.last_error = None
            session.add(DraftEvent(draft_id=draft.id, action="retranslate", actor=actor, at=now))
            return _draft_view(draft)

    @staticmethod
    def _draft(session: Session, draft_id: int) -> Draft:
        draft = session.get(Draft, draft_id)
        if draft is None:
            raise NotFoundError(f"no draft with id {draft_id}")
        return draft


def _draft_view(draft: Draft) -> DraftView:
    entry = draft.entry
    feed = entry.feed
    return DraftView(
        id=draft.id,
        status=draft.status,
        title=draft.title,
        body_html=draft.body_html,
        original_title=entry.title,
        original_url=entry.url,
        author=entry.author,
        published_at=entry.published_at,
        feed=feed.name,
        feed_slug=feed.slug,
        feed_url=feed.url,
        feed_title=feed.title,
        feed_site_url=feed.site_url,
        feed_updated_at=feed.last_success_at,
        engine=draft.engine,
        source_language=draft.source_language,
        target_language=draft.target_language,
        characters=draft.characters,
        requests=draft.requests,
        warnings=tuple(draft.warnings or ()),
        version=draft.version,
        reviewed_by=draft.reviewed_by,
        created_at=draft.created_at,
        updated_at=draft.updated_at,
        approved_at=draft.approved_at,
    )
