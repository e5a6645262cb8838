"""The review desk: what the review pages and the JSON API share.

Who is asking (session cookie or API token), every review action with its input checks,
everything a draft page shows, and what follows a change (the published feeds' cache is
dropped, the WebSub hub is told). The views only translate HTTP to these calls and back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request

from aggregator.clock import utc_now
from aggregator.config import Settings
from aggregator.desk.compare import (
    BlockPair,
    DiffLine,
    block_pairs,
    clean_body,
    clean_title,
    current_source_html,
    replace_block,
    source_changes,
)
from aggregator.errors import InvalidEditError, NotFoundError
from aggregator.publishing.websub import HubNotifier
from aggregator.store import DraftView, Store
from aggregator.store.snapshots import DraftDetail, EditFlag
from aggregator.untrusted import is_row_id, plain_text
from aggregator.web.auth import SESSION_COOKIE, Auth, Reviewer
from aggregator.web.images import upstream_html
from aggregator.web.public import PublicationCache

ACTIONS = ("approve", "reject", "retranslate", "acknowledge", "withdraw")


def checked_id(draft_id: int) -> int:
    """A draft id from a URL, or NotFoundError (404) past what the database can hold."""
    if not is_row_id(draft_id):
        raise NotFoundError(f"no draft with id {draft_id}")
    return draft_id


@dataclass(frozen=True)
class DraftPage:
    """Everything shown about one draft."""

    detail: DraftDetail
    pairs: list[BlockPair]
    changes: list[DiffLine] | None  # for a stale draft: what changed in the original
    previous_id: int | None  # neighbours in the review queue
    next_id: int | None

    @property
    def draft(self) -> DraftView:
        return self.detail.draft

    @property
    def block_flags(self) -> dict[int, EditFlag]:
        """Blocks whose edit was kept over a changed original, by index."""
        return {f.index: f for f in self.draft.flags if f.index is not None}

    @property
    def other_flags(self) -> list[EditFlag]:
        """The title's or whole body's flag, or a block that is no longer in the article."""
        shown = set(range(len(self.pairs)))
        return [f for f in self.draft.flags if f.index is None or f.index not in shown]


@dataclass
class Desk:
    settings: Settings
    store: Store
    auth: Auth
    cache: PublicationCache
    notifier: HubNotifier | None = None
    now: Callable[[], datetime] = utc_now

    # ------------------------------------------------------------ who is asking

    def session_reviewer(self, request: Request) -> Reviewer | None:
        return self.auth.session(request.cookies.get(SESSION_COOKIE))

    def api_reviewer(self, request: Request) -> Reviewer | None:
        """A bearer token, else the review pages' session (whose writes need the CSRF
        token in the X-CSRF-Token header)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return self.auth.token_reviewer(token.strip())
        return self.session_reviewer(request)

    # ------------------------------------------------------------ reading

    def page(self, draft_id: int) -> DraftPage:
        detail = self.store.get_draft_detail(checked_id(draft_id))
        draft = detail.draft
        changes = None
        if draft.stale and detail.reviewed_source_html is not None:
            changes = source_changes(detail.reviewed_source_html, current_source_html(detail))
        queue = [d.id for d in self.store.review_queue()]
        previous_id = next_id = None
        if draft.id in queue:
            position = queue.index(draft.id)
            previous_id = queue[position - 1] if position > 0 else None
            next_id = queue[position + 1] if position + 1 < len(queue) else None
        elif queue:
            next_id = queue[0]
        return DraftPage(
            detail=detail,
            pairs=block_pairs(detail.source_html, draft.body_html),
            changes=changes,
            previous_id=previous_id,
            next_id=next_id,
        )

    def next_in_queue(self, after: int) -> int | None:
        queue = [d.id for d in self.store.review_queue() if d.id != after]
        return queue[0] if queue else None

    # ------------------------------------------------------------ changes

    def _changed(self) -> None:
        self.cache.invalidate()
        if self.notifier is not None:
            self.notifier.poke()

    def edit(
        self,
        who: Reviewer,
        draft_id: int,
        version: int,
        *,
        title: str | None = None,
        body_html: str | None = None,
        blocks: Sequence[tuple[int, str]] = (),
    ) -> DraftView:
        """Title, whole body or some blocks, checked and sanitized, in one versioned write.

        Control and bidi override characters never reach the draft (``plain_text``); images
        shown through the desk's image route get their upstream address back.
        """
        checked_id(draft_id)
        if body_html is not None and blocks:
            raise InvalidEditError("send either the whole body or some blocks, not both")
        new_title = clean_title(plain_text(title)) if title is not None else None
        new_body = clean_body(upstream_html(body_html)) if body_html is not None else None
        blocks = [(index, upstream_html(plain_text(html))) for index, html in blocks]
        detail = "title" if new_title is not None else None
        if blocks:
            current = self.store.get_draft(draft_id)
            new_body = current.body_html
            for index, html in blocks:
                new_body = replace_block(new_body, index, html)
            numbers = ", ".join(str(index + 1) for index, _ in blocks)
            detail = f"{detail + ', ' if detail else ''}block{'s' if len(blocks) > 1 else ''} "
            detail += numbers
        elif new_body is not None:
            detail = f"{detail + ', ' if detail else ''}body"
        if new_title is None and new_body is None:
            raise InvalidEditError("nothing to change: give a title, a body or blocks")
        # Saving a part settles its flag (an edit kept over a changed original).
        confirm = [f"block {index + 1}" for index, _ in blocks]
        if new_title is not None:
            confirm.append("title")
        draft = self.store.edit(
            draft_id,
            actor=who.name,
            now=self.now(),
            title=new_title,
            body_html=new_body,
            expected_version=version,
            detail=detail,
            confirm=confirm,
        )
        self._changed()
        return draft

    def act(self, who: Reviewer, draft_id: int, version: int, action: str) -> DraftView:
        checked_id(draft_id)
        now = self.now()
        if action == "approve":
            draft = self.store.approve(draft_id, actor=who.name, now=now, expected_version=version)
        elif action == "reject":
            draft = self.store.reject(draft_id, actor=who.name, now=now, expected_version=version)
        elif action == "retranslate":
            draft = self.store.request_retranslation(
                draft_id, actor=who.name, now=now, expected_version=version
            )
        elif action == "withdraw":
            draft = self.store.withdraw(draft_id, actor=who.name, now=now, expected_version=version)
        elif action == "acknowledge":
            current = current_source_html(self.store.get_draft_detail(draft_id))
            draft = self.store.acknowledge_source_change(
                draft_id,
                actor=who.name,
                now=now,
                current_source_html=current,
                expected_version=version,
            )
        else:
            raise InvalidEditError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        self._changed()
        return draft

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
