"""What is published: the copies the feeds, the article pages and the home pages serve,
by source and by language, and the stamp that says when they changed.

The published copy of a draft (``published_*``) is written at approval (``store.drafts``);
everything here reads it.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select

from aggregator.models import Draft, DraftStatus, Entry, Feed
from aggregator.store.base import AnySelect, StoreBase, row_or_missing
from aggregator.store.drafts import IS_PUBLISHED, draft_view
from aggregator.store.snapshots import DraftView, PublicationStamp


class PublicationStore(StoreBase):
    def published_draft(self, draft_id: int) -> DraftView:
        """The draft as the public sees it: its published copy when it has one (check
        ``published``; ``withdrawn_at`` says whether it was taken out)."""
        with self.session() as session:
            draft = row_or_missing(session, Draft, draft_id, "draft")
            return public_view(draft) if draft.published_approved_at else draft_view(draft)

    def published(
        self,
        limit: int,
        *,
        feed_slug: str | None = None,
        offset: int = 0,
        language: str | None = None,
    ) -> list[DraftView]:
        """Published copies (in ``language`` only, when given), newest approval first."""
        with self.session() as session:
            query = published_where(select(Draft), feed_slug, language)
            query = query.order_by(Draft.published_approved_at.desc(), Draft.id.desc())
            query = query.offset(offset).limit(limit)
            return [public_view(d) for d in session.scalars(query)]

    def published_count(self, *, feed_slug: str | None = None, language: str | None = None) -> int:
        with self.session() as session:
            query = published_where(select(func.count(Draft.id)), feed_slug, language)
            return int(session.scalar(query) or 0)

    def published_languages(self) -> list[str]:
        """The target languages of what is published, each once."""
        with self.session() as session:
            query = select(Draft.target_language).where(IS_PUBLISHED).distinct()
            return sorted(session.scalars(query))

    def translations_published(self) -> dict[int, dict[str, int]]:
        """By entry, its published drafts' ids by target language, for entries published
        in more than one: the alternates each translation links to."""
        with self.session() as session:
            several = (
                select(Draft.entry_id)
                .where(IS_PUBLISHED)
                .group_by(Draft.entry_id)
                .having(func.count(Draft.id) > 1)
            )
            rows = session.execute(
                select(Draft.entry_id, Draft.target_language, Draft.id).where(
                    IS_PUBLISHED, Draft.entry_id.in_(several)
                )
            )
            found: dict[int, dict[str, int]] = {}
            for entry_id, language, draft_id in rows:
                found.setdefault(entry_id, {})[language] = draft_id
            return found

    def feed_slugs(self) -> dict[str, str]:
        with self.session() as session:
            return dict(session.execute(select(Feed.slug, Feed.name)).all())

    def feed_title_by_slug(self, slug: str) -> str | None:
        """The feed's own title (else its name) for a slug, or None if no feed has it."""
        with self.session() as session:
            row = session.execute(select(Feed.title, Feed.name).where(Feed.slug == slug)).first()
            return None if row is None else (row[0] or row[1])

    def publication_stamp(self) -> PublicationStamp:
        """Three small aggregate queries; cheap enough to run every second."""
        with self.session() as session:
            approved = session.execute(
                select(func.count(Draft.id), func.max(Draft.updated_at)).where(IS_PUBLISHED)
            ).one()
            entries_changed = session.scalar(
                select(func.max(Entry.updated_at))
                .join(Draft, Draft.entry_id == Entry.id)
                .where(IS_PUBLISHED)
            )
            any_draft_changed = session.scalar(select(func.max(Draft.updated_at)))
            feeds = tuple(
                session.execute(
                    select(
                        Feed.id, Feed.slug, Feed.name, Feed.title, Feed.site_url, Feed.url
                    ).order_by(Feed.id)
                ).all()
            )
            moments = [m for m in (any_draft_changed, entries_changed) if m is not None]
            return PublicationStamp(
                published=(approved[0], approved[1], entries_changed, feeds),
                changed_at=max(moments) if moments else None,
            )


def published_where(query: AnySelect, feed_slug: str | None, language: str | None) -> AnySelect:
    query = query.where(IS_PUBLISHED)
    if feed_slug is not None:
        query = (
            query.join(Entry, Draft.entry_id == Entry.id).join(Feed).where(Feed.slug == feed_slug)
        )
    if language is not None:
        query = query.where(Draft.target_language == language)
    return query


def public_view(draft: Draft) -> DraftView:
    """The published copy, in place of the working one (they differ while a redraft of a
    published article waits for review)."""
    view = draft_view(draft)
    if draft.published_approved_at is None:
        return view
    return replace(
        view,
        status=DraftStatus.APPROVED,
        title=draft.published_title or view.title,
        body_html=draft.published_body_html or view.body_html,
        approved_at=draft.published_approved_at,
        reviewed_by=draft.published_by,
        updated_at=(
            view.updated_at if draft.status == DraftStatus.APPROVED else draft.published_approved_at
        ),
    )
