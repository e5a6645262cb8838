"""The review desk: the one service behind every door (the review pages, the JSON API, the
command line).

It takes who acts (``Actor``), a draft id and the version the editor saw, checks the input
(``clean_title``, ``clean_body``, the version), writes through the store and returns the
draft as it is now; every refusal is an ``AggregatorError``. It knows no HTTP: each door
reads its request (a cookie, a token, ``--as``) into an ``Actor`` and turns the outcome back
into its own answer. What follows a change (the web's publication dropped, the WebSub hub
told) is given to it as hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aggregator.clock import utc_now
from aggregator.config import Settings
from aggregator.desk.compare import (
    BlockPair,
    DiffLine,
    block_pairs,
    clean_body,
    clean_title,
    current_source_html,
    source_changes,
)
from aggregator.desk.health import FeedSheet, feed_sheets
from aggregator.errors import InvalidEditError, NotFoundError
from aggregator.languages import article_path
from aggregator.publishing.websub import HubNotifier
from aggregator.store import DraftView, Store
from aggregator.store.snapshots import DraftDetail, EditFlag
from aggregator.translation import kept
from aggregator.translation.kept import replace_block
from aggregator.untrusted import is_row_id, plain_text

ACTIONS = ("approve", "reject", "retranslate", "acknowledge", "withdraw")


class Actor(Protocol):
    """Who acts at the desk: a login, an API token, a command line's ``--as``."""

    @property
    def name(self) -> str:
        """As the audit trail records it."""
        ...

    @property
    def credited(self) -> bool:
        """Whether the published credit line may name them (not a bare Unix login)."""
        ...


@dataclass(frozen=True)
class Editor:
    """An ``Actor`` named outside the web (the command line)."""

    name: str
    credited: bool = True


def _unchanged(html: str) -> str:
    return html


def _nothing() -> None:
    return None


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
    main_language: str  # [translation] target_language: its articles are at the root

    @property
    def draft(self) -> DraftView:
        return self.detail.draft

    @property
    def article_path(self) -> str:
        """Where the published article is: under its language's prefix."""
        return article_path(self.draft.id, self.draft.target_language, self.main_language)

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
    """``on_publication_change``: called after every change (what the public shows may have
    changed). ``html_from_page``: an editor's HTML as the door received it, back to what is
    stored (the review pages show images through their own route)."""

    settings: Settings
    store: Store
    on_publication_change: Callable[[], None] = _nothing
    notifier: HubNotifier | None = None
    now: Callable[[], datetime] = utc_now
    html_from_page: Callable[[str], str] = _unchanged

    # ------------------------------------------------------------ reading

    def feeds(self) -> list[FeedSheet]:
        return feed_sheets(self.settings, self.store, self.now())

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
            main_language=self.settings.translation.target_language,
        )

    def next_in_queue(self, after: int) -> int | None:
        queue = [d.id for d in self.store.review_queue() if d.id != after]
        return queue[0] if queue else None

    # ------------------------------------------------------------ changes

    def _changed(self) -> None:
        self.on_publication_change()
        if self.notifier is not None:
            self.notifier.poke()

    def edit(
        self,
        who: Actor,
        draft_id: int,
        version: int | None,
        *,
        title: str | None = None,
        body_html: str | None = None,
        blocks: Sequence[tuple[int, str]] = (),
    ) -> DraftView:
        """Title, whole body or some blocks, checked and sanitized, in one versioned write
        (``version`` None: the current one, for the command line, which shows no version).

        Control and bidi override characters never reach the draft (``plain_text``); images
        shown through the desk's image route get their upstream address back.
        """
        checked_id(draft_id)
        if body_html is not None and blocks:
            raise InvalidEditError("send either the whole body or some blocks, not both")
        new_title = clean_title(plain_text(title)) if title is not None else None
        new_body = clean_body(self.html_from_page(body_html)) if body_html is not None else None
        blocks = [(index, self.html_from_page(plain_text(html))) for index, html in blocks]
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
            title=new_title,
            body_html=new_body,
            actor=who.name,
            now=self.now(),
            detail=detail,
            confirm=confirm,
            expected_version=version,
            edit_rules=kept,
        )
        self._changed()
        return draft

    def act(self, who: Actor, draft_id: int, version: int | None, action: str) -> DraftView:
        """One of ``ACTIONS`` (``version`` None: on the current version)."""
        checked_id(draft_id)
        now = self.now()
        named = who.credited
        if action == "approve":
            draft = self.store.approve(
                draft_id, actor=who.name, now=now, expected_version=version, named=named
            )
        elif action == "reject":
            draft = self.store.reject(
                draft_id, actor=who.name, now=now, expected_version=version, named=named
            )
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
