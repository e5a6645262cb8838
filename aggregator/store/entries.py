"""Entries: claims under a lease, and the outcome of each processing stage.

A claim marks entries with ``locked_until`` (the lease) and ``claimed_by`` (which claim holds
them). A running daemon renews its leases; a crashed process's entries are claimable again
once its lease is over. Every outcome is written only if the claim is still held by the one
writing it: work may run more than once, its result lands once.

What the work produced on the way (the article's full text, translations for the memory,
engines' use) rides along with the outcome as a ``Progress`` and is written in its
transaction: one write per entry. Translations and use are kept even when the claim was
lost, since they were paid for.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    CursorResult,
    Select,
    Update,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from aggregator.errors import ClaimLostError, NotFoundError
from aggregator.kept_edits import EditRules
from aggregator.models import (
    Draft,
    DraftEvent,
    DraftStatus,
    Entry,
    EntryState,
    Feed,
    UsageCount,
    table_of,
)
from aggregator.store import edits as kept
from aggregator.store.base import StoreBase, categories_of
from aggregator.store.memory import MemoryRow, record_usage, upsert_memory
from aggregator.store.moves import move_values
from aggregator.store.snapshots import (
    DraftContent,
    EntryWork,
)
from aggregator.transitions import STAGE_OUTCOMES, Outcome

WAITING = (EntryState.NEW, EntryState.EXTRACTED)
ENTRIES, DRAFTS, DRAFT_EVENTS = table_of(Entry), table_of(Draft), table_of(DraftEvent)
FEEDS = table_of(Feed)

# The hot path of every worker, built once: statements made per call cost more CPU than the
# database spends running them. Values travel as parameters.
_DRAFT_OF_ENTRY = select(DRAFTS.c.id).where(
    DRAFTS.c.entry_id == bindparam("this_entry"),
    DRAFTS.c.target_language == bindparam("language"),
)
_DRAFTS_OF_CLAIM = (
    select(
        DRAFTS.c.entry_id,
        DRAFTS.c.target_language,
        DRAFTS.c.status,
        DRAFTS.c.redraft_requested,
    )
    .join(ENTRIES, DRAFTS.c.entry_id == ENTRIES.c.id)
    .where(ENTRIES.c.claimed_by == bindparam("token"))
)
_NEW_DRAFT = insert(DRAFTS).returning(DRAFTS.c.id)
_REDRAFT = (
    update(DRAFTS)
    .where(DRAFTS.c.id == bindparam("this_draft"))
    .values(version=DRAFTS.c.version + 1)
)
_DRAFT_EVENT = insert(DRAFT_EVENTS)


@lru_cache(maxsize=4)
def _entry_outcome(*, claimed: bool, count_attempt: bool) -> Update:
    """UPDATE of one entry (``this_entry``), held by ``claim_token`` when ``claimed``."""
    statement = update(ENTRIES).where(ENTRIES.c.id == bindparam("this_entry"))
    if claimed:
        statement = statement.where(ENTRIES.c.claimed_by == bindparam("claim_token"))
    if count_attempt:
        statement = statement.values(attempts=ENTRIES.c.attempts + 1)
    return statement


def _outcome(outcome: Outcome, now: datetime) -> dict[str, Any]:
    return move_values(STAGE_OUTCOMES[outcome], now)


@dataclass
class Progress:
    """What work on one entry produced before its outcome, written with the outcome."""

    full_html: str | None = None  # extracted: the article's sanitized full text
    full_text_source: str | None = None  # "feed" or "page"
    language: str | None = None
    learned: list[MemoryRow] = field(default_factory=list)  # translations for the memory
    usage: list[UsageCount] = field(default_factory=list)  # engines' use with no budget

    def entry_values(self, now: datetime) -> dict[str, Any]:
        """The full text taken on the way, if any: the entry is extracted, whatever follows."""
        if self.full_html is None:
            return {}
        return {
            **_outcome(Outcome.EXTRACTED, now),
            "full_html": self.full_html,
            "full_text_source": self.full_text_source,
            "language": self.language,
        }

    def write_paid_for(self, session: Session) -> None:
        """Translations and engines' use, whatever becomes of the entry: both were paid."""
        upsert_memory(session, self.learned)
        record_usage(session, self.usage)


# A claim is renewed at most this long: work stuck longer is left for another process.
MAX_CLAIM_SECONDS = 3600.0


class Claims:
    """The claims this process holds, by entry: what its writes are fenced with."""

    def __init__(self) -> None:
        # Host and process for people reading the table; the random part keeps two stores
        # of one process (or a reused pid) from sharing tokens.
        self.owner = f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._held: dict[int, str] = {}
        self._released: dict[int, str] = {}
        self._taken_at: dict[str, float] = {}

    def new_token(self) -> str:
        return f"{self.owner}:{next(self._numbers)}"

    def hold(self, ids: Iterable[int], token: str) -> None:
        with self._lock:
            for entry_id in ids:
                self._held[entry_id] = token
                self._released.pop(entry_id, None)
            self._taken_at[token] = time.monotonic()

    def token(self, entry_id: int) -> str | None:
        with self._lock:
            return self._held.get(entry_id) or self._released.get(entry_id)

    def forget(self, entry_id: int) -> None:
        with self._lock:
            self._held.pop(entry_id, None)
            self._released.pop(entry_id, None)

    def release(self, ids: Iterable[int] | None = None) -> dict[int, str]:
        """Stop holding these entries (all when None); late writes stay fenced out."""
        with self._lock:
            chosen = list(self._held) if ids is None else [i for i in ids if i in self._held]
            released = {i: self._held.pop(i) for i in chosen}
            self._released.update(released)
            return released

    def live_tokens(self) -> list[str]:
        oldest = time.monotonic() - MAX_CLAIM_SECONDS
        with self._lock:
            tokens = set(self._held.values())
            return sorted(t for t in tokens if self._taken_at.get(t, 0.0) >= oldest)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)


# The moment of a claim, typed as the columns it is compared with (aware datetimes stored
# as UTC).
_NOW: BindParameter[Any] = bindparam("now", type_=ENTRIES.c.locked_until.type)

_UNCLAIMED = or_(ENTRIES.c.locked_until.is_(None), ENTRIES.c.locked_until <= _NOW)


@lru_cache(maxsize=2)
def _claim_candidates(*, retry_failed: bool) -> Select[tuple[int]]:
    """Up to ``limit`` waiting entries free at ``now``, oldest first, skipping locked rows,
    after the entry ``after``: a run goes through the backlog once, as a cursor."""
    query = select(ENTRIES.c.id).where(
        ENTRIES.c.state.in_(WAITING), _UNCLAIMED, ENTRIES.c.id > bindparam("after")
    )
    if not retry_failed:
        query = query.where(
            or_(ENTRIES.c.next_attempt_at.is_(None), ENTRIES.c.next_attempt_at <= _NOW)
        )
    query = query.order_by(ENTRIES.c.id).limit(bindparam("limit"))
    return query.with_for_update(skip_locked=True, of=ENTRIES)


# Marks the candidates as this claim's (``token``) until ``lease_end``; the conditions are
# checked again, as on SQLite nothing locked the rows between the two statements.
_TAKE = (
    update(ENTRIES)
    .where(
        ENTRIES.c.id.in_(bindparam("ids", expanding=True)),
        ENTRIES.c.state.in_(WAITING),
        _UNCLAIMED,
    )
    .values(
        locked_until=bindparam("lease_end", type_=ENTRIES.c.locked_until.type),
        claimed_by=bindparam("token"),
    )
)
_CLAIMED = (
    select(
        ENTRIES.c.id,
        ENTRIES.c.feed_id,
        FEEDS.c.name.label("feed_name"),
        ENTRIES.c.url,
        ENTRIES.c.title,
        ENTRIES.c.author,
        ENTRIES.c.published_at,
        ENTRIES.c.summary_html,
        ENTRIES.c.content_html,
        ENTRIES.c.full_html,
        ENTRIES.c.language,
        ENTRIES.c.state,
        ENTRIES.c.attempts,
        FEEDS.c.config_url.label("feed_config_url"),
        ENTRIES.c.categories,
    )  # EntryWork's fields
    .join(FEEDS, ENTRIES.c.feed_id == FEEDS.c.id)
    .where(ENTRIES.c.claimed_by == bindparam("token"))
    .order_by(ENTRIES.c.id)
)


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


class EntryStore(StoreBase):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.claims = Claims()

    # ------------------------------------------------------------ claims

    def claim_entries(
        self,
        now: datetime,
        lease: timedelta,
        limit: int,
        *,
        retry_failed: bool = False,
        after: int = 0,
    ) -> list[EntryWork]:
        """Take up to ``limit`` entries that wait for a stage, oldest first, under a lease.

        Entries another process holds are skipped, not waited for (FOR UPDATE SKIP LOCKED
        on PostgreSQL, the write lock on SQLite); expired leases are taken over. Only
        entries whose id is above ``after`` are taken: a run that passes the last id it
        claimed reaches every entry once. Without it, with ``retry_failed``, the oldest
        entries that failed are due again at once and would be all a run ever claims.
        """
        with self.session(claim=True) as session:
            candidates = list(
                session.scalars(
                    _claim_candidates(retry_failed=retry_failed),
                    {"now": now, "limit": limit, "after": after},
                )
            )
            if not candidates:
                return []
            token = self.claims.new_token()
            session.execute(
                _TAKE, {"ids": candidates, "now": now, "lease_end": now + lease, "token": token}
            )
            rows = session.execute(_CLAIMED, {"token": token})
            drafts: dict[int, dict[str, DraftStatus | None]] = {}
            for entry_id, language, status, requested in session.execute(
                _DRAFTS_OF_CLAIM, {"token": token}
            ):
                # None: a draft to translate again (``Draft.redraft_requested``).
                drafts.setdefault(entry_id, {})[language] = None if requested else status
            claimed = [
                EntryWork(
                    **{**row._asdict(), "categories": categories_of(row.categories)},
                    drafts=drafts.get(row.id, {}),
                )
                for row in rows
            ]
        self.claims.hold((work.id for work in claimed), token)
        return claimed

    def renew_claims(self, now: datetime, lease: timedelta) -> int:
        """Extend the lease of every claim this process still holds; how many entries."""
        tokens = self.claims.live_tokens()
        if not tokens:
            return 0
        with self.session() as session:
            result = session.execute(
                update(Entry)
                .where(Entry.claimed_by.in_(tokens))
                .values(locked_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result)

    def release_entries(self, ids: Iterable[int]) -> None:
        """Give entries back unprocessed; claimable again at once."""
        wanted = list(ids)
        if not wanted:
            return
        released = self.claims.release(wanted)
        unclaimed = [i for i in wanted if i not in released and self.claims.token(i) is None]
        with self.session() as session:
            self._release(session, released)
            if unclaimed:
                session.execute(
                    update(Entry)
                    .where(Entry.id.in_(unclaimed))
                    .values(locked_until=None, claimed_by=None)
                    .execution_options(synchronize_session=False)
                )

    def release_claims(self) -> int:
        """Give back every entry this process holds (on shutdown); how many were released.

        Work still running on them finds its claim gone and its result is discarded.
        """
        released = self.claims.release()
        if not released:
            return 0
        with self.session() as session:
            return self._release(session, released)

    @staticmethod
    def _release(session: Session, released: dict[int, str]) -> int:
        count = 0
        for token in set(released.values()):
            ids = [i for i, t in released.items() if t == token]
            result = session.execute(
                update(Entry)
                .where(Entry.id.in_(ids), Entry.claimed_by == token)
                .values(locked_until=None, claimed_by=None)
                .execution_options(synchronize_session=False)
            )
            count += _rowcount(result)
        return count

    def _write(
        self,
        session: Session,
        entry_id: int,
        values: dict[str, Any],
        *,
        finish: bool,
        count_attempt: bool = False,
    ) -> bool:
        """Write the outcome of work on an entry, if this process still holds its claim.

        One UPDATE, conditional on the claim: it takes the row (on SQLite the write lock)
        and checks the claim at once. With ``finish`` the claim ends in the same write.
        False when the claim was lost; an entry never claimed through this store (a direct
        call) is written unconditionally.
        """
        token = self.claims.token(entry_id)
        if finish:
            self.claims.forget(entry_id)
            values = {**values, "locked_until": None, "claimed_by": None}
        statement = _entry_outcome(claimed=token is not None, count_attempt=count_attempt)
        parameters = {**values, "this_entry": entry_id}
        if token is not None:
            parameters["claim_token"] = token
        result = session.execute(statement, parameters)
        if _rowcount(result) == 1:
            return True
        if token is None:
            raise NotFoundError(f"no entry with id {entry_id}")
        return False

    @staticmethod
    def _lost(entry_id: int) -> ClaimLostError:
        return ClaimLostError(
            f"entry {entry_id}: this process no longer holds its claim (the lease ran out and "
            "another process took it, or it was released at shutdown); the result is discarded"
        )

    # ------------------------------------------------------------ outcomes

    def save_extracted(
        self, entry_id: int, *, full_html: str, source: str, language: str | None, now: datetime
    ) -> None:
        values = {
            **_outcome(Outcome.EXTRACTED, now),
            "full_html": full_html,
            "full_text_source": source,
            "language": language,
        }
        with self.session() as session:
            if not self._write(session, entry_id, values, finish=False):
                raise self._lost(entry_id)

    def mark_skipped(
        self, entry_id: int, reason: str, *, now: datetime, progress: Progress | None = None
    ) -> None:
        progress = progress or Progress()
        values = {
            **progress.entry_values(now),
            **_outcome(Outcome.SKIPPED, now),
            "skip_reason": reason,
        }
        with self.session() as session:
            if not self._write(session, entry_id, values, finish=True):
                raise self._lost(entry_id)

    def record_entry_error(
        self,
        entry_id: int,
        message: str,
        *,
        now: datetime,
        next_attempt_at: datetime,
        progress: Progress | None = None,
    ) -> None:
        """Store a failed attempt; nothing when the claim was lost (its new holder decides)."""
        progress = progress or Progress()
        values = {
            **progress.entry_values(now),
            **_outcome(Outcome.FAILED, now),
            "last_error": message,
            "next_attempt_at": next_attempt_at,
        }
        with self.session() as session:
            self._write(session, entry_id, values, finish=True, count_attempt=True)
            progress.write_paid_for(session)

    def save_draft(
        self,
        entry_id: int,
        content: DraftContent,
        *,
        now: datetime,
        progress: Progress | None = None,
        edit_rules: EditRules | None = None,
    ) -> int:
        """``save_drafts`` of one draft."""
        (draft_id,) = self.save_drafts(
            entry_id, [content], now=now, progress=progress, edit_rules=edit_rules
        )
        return draft_id

    def save_drafts(
        self,
        entry_id: int,
        contents: Sequence[DraftContent],
        *,
        now: datetime,
        progress: Progress | None = None,
        edit_rules: EditRules | None = None,
    ) -> list[int]:
        """Create the entry's draft in each content's target language, or refresh a pending
        one, all in one transaction: one draft per entry and language, written only by the
        holder of the entry's claim (else ClaimLostError, nothing written). The ids, in
        the order of ``contents``.

        A redraft puts the editor's edits back with ``edit_rules`` (``translation.kept``);
        redrafting an edited draft without them is refused, so no edit is dropped."""
        progress = progress or Progress()
        entry_values = {**progress.entry_values(now), **_outcome(Outcome.DRAFTED, now)}
        with self.session() as session:
            if not self._write(session, entry_id, entry_values, finish=True):
                raise self._lost(entry_id)
            ids = [self._save_one(session, entry_id, c, now, edit_rules) for c in contents]
            progress.write_paid_for(session)
            return ids

    @staticmethod
    def _save_one(
        session: Session,
        entry_id: int,
        content: DraftContent,
        now: datetime,
        edit_rules: EditRules | None,
    ) -> int:
        fields = {
            "title": content.title,
            "body_html": content.body_html,
            "source_language": content.source_language,
            "target_language": content.target_language,
            "engine": content.engine,
            "characters": content.characters,
            "requests": content.requests,
            "warnings": list(content.warnings),
            "prompt_tokens": content.prompt_tokens,
            "completion_tokens": content.completion_tokens,
            "cost": content.cost,
            "headline": content.headline,
            "status": DraftStatus.PENDING,
            "updated_at": now,
            "translated_at": now,
            "redraft_requested": False,
        }
        found = {"this_entry": entry_id, "language": content.target_language}
        draft_id = session.scalar(_DRAFT_OF_ENTRY, found)
        if draft_id is None:
            new = {**fields, "entry_id": entry_id, "created_at": now, "version": 1}
            draft_id = session.execute(_NEW_DRAFT, new).scalar_one()
            action = "drafted"
        else:
            session.execute(_REDRAFT, {**fields, "this_draft": draft_id})
            action = "redrafted"
        event = {"draft_id": draft_id, "action": action, "actor": "aggregator", "at": now}
        session.execute(_DRAFT_EVENT, event)
        if action == "redrafted":
            # In the same transaction: no moment when the draft holds machine output over
            # an editor's edits.
            kept.reapply_in(session, int(draft_id), now, edit_rules)
        return int(draft_id)

    # ------------------------------------------------------------ changed originals

    def changed_page_originals(self, feed_id: int, since: datetime) -> list[tuple[int, str]]:
        """(entry id, article URL) of this feed's approved drafts taken from the article
        page whose feed item changed at or after ``since``: the feed holds only an excerpt,
        so what changed can be seen only by reading the page again."""
        with self.session() as session:
            rows = session.execute(
                select(Entry.id, Entry.url)
                .join(Draft, Draft.entry_id == Entry.id)
                .where(
                    Entry.feed_id == feed_id,
                    Entry.full_text_source == "page",
                    Entry.url.is_not(None),
                    Draft.status == DraftStatus.APPROVED,
                    Draft.source_changed_at >= since,
                )
                .distinct()  # one page per entry, whatever number of its drafts are approved
                .order_by(Entry.id)
            )
            return [(entry_id, url or "") for entry_id, url in rows]

    def save_reread_page(self, entry_id: int, full_html: str, *, now: datetime) -> None:
        """The page of an approved draft, read again: the original as it is now, which the
        desk compares with the one reviewed. The published translation is not touched."""
        with self.session() as session:
            session.execute(
                update(Entry)
                .where(Entry.id == entry_id, Entry.state == EntryState.DRAFTED)
                .values(full_html=full_html, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    def backlog(self, now: datetime) -> dict[str, int]:
        """Entries waiting per state, and how many of those are failing."""
        with self.session() as session:
            rows = session.execute(select(Entry.state, func.count()).group_by(Entry.state))
            counts = {state.value: n for state, n in rows.all()}
            counts["failing"] = (
                session.scalar(
                    select(func.count())
                    .select_from(Entry)
                    .where(Entry.last_error.is_not(None), Entry.state.in_(WAITING))
                )
                or 0
            )
            return counts
