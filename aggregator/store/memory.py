"""Translation memory and engine usage.

Memory: every block translated once is kept under its engine, the two languages and the hash
of its normalised source text (inline markup as placeholders, so the same sentence with
another link target is still the same block). Recurring intros and footers, unchanged blocks
of an updated article and a retry after a failure are then free. An editor's correction of a
block is kept under the engine name ``editor`` and preferred to any engine's.

Usage: characters and requests per engine per UTC day. ``spend`` adds a request's characters
only if they fit in the engine's daily budget, in one statement, so that several workers on
several machines never overspend together by more than nothing. The use of an engine with
no budget is added afterwards, with the article's outcome (``record_usage``).

While an entry is drafted, what it teaches the memory waits in a ``PendingMemory`` and is
written in the transaction of the entry's outcome: one transaction per entry, not three.

In flight: a block that one entry is translating is not sent again by another entry drafted
at the same time in this process (a newsletter's intro, in every post of one poll). The first
``PendingMemory`` to miss a block in the database claims it in a process-wide table; later
ones wait for its answer instead of sending the block. An entry waits only for claims made
before its own, so waits never go round in a circle. Across processes there is no such
table: a block may be sent once per process, and the memory serves it after the fact.

Feed context: what the extraction stage needs to know about an entry's feed (its URLs, and
the recent entries that show which blocks recur), read in one short transaction.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Insert, Update, bindparam, func, select, true, update
from sqlalchemy.orm import Session

from aggregator.kept_edits import EditRules
from aggregator.languages import LanguagePair
from aggregator.models import (
    Draft,
    DraftEdit,
    EngineUsage,
    Entry,
    EntryState,
    Feed,
    TranslationMemory,
    UsageCount,
    table_of,
)
from aggregator.spending import TokenBudget, TokenSpend
from aggregator.store.base import StoreBase, insert_for

MEMORY, USAGE = table_of(TranslationMemory), table_of(EngineUsage)
# Built once, run with parameters: this is every draft's path (see store.entries).
_RECALL = select(
    MEMORY.c.id,
    MEMORY.c.engine,
    MEMORY.c.source_hash,
    MEMORY.c.source_text,
    MEMORY.c.translated_text,
).where(
    MEMORY.c.source_language == bindparam("source_language"),
    MEMORY.c.target_language == bindparam("target_language"),
    MEMORY.c.engine.in_(bindparam("engines", expanding=True)),
    MEMORY.c.source_hash.in_(bindparam("hashes", expanding=True)),
)
# Rows locked in one order (the unique key's, as the upsert writes them): workers drafting
# entries that share blocks would otherwise deadlock.
_LOCK_RECALLED = (
    select(MEMORY.c.id)
    .where(MEMORY.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(MEMORY.c.engine, MEMORY.c.source_hash)
    .with_for_update()
)
_COUNT_USE = (
    update(MEMORY)
    .where(MEMORY.c.id.in_(bindparam("ids", expanding=True)))
    .values(uses=MEMORY.c.uses + 1)
)
MemoryRow = dict[str, object]
EDITOR = "editor"  # the engine name under which an editor's corrections are remembered
BUDGET_SPENT = "daily budget"  # in the message of an entry paused by a spent budget
_CHUNK = 500


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Remembered:
    translation: str
    engine: str


@dataclass(frozen=True)
class Usage:
    """Characters and requests sent to one engine (a day's, or all time's)."""

    characters: int
    requests: int

    @staticmethod
    def larger(a: Usage, b: Usage) -> Usage:
        """Each count the larger of the two (two records of the same use)."""
        return Usage(max(a.characters, b.characters), max(a.requests, b.requests))


NO_USE = Usage(0, 0)


# How long an entry waits for a block another entry is translating before sending it itself
# (a slow engine, or an entry that died without saying so).
IN_FLIGHT_WAIT = 120.0
# The database, the languages, the engines and the source text.
_FlightKey = tuple[str, str, str, tuple[str, ...], str]
_in_flight: dict[_FlightKey, Future[Remembered | None]] = {}
_in_flight_lock = threading.Lock()
# Answered blocks kept in the table (oldest first), until their entries' outcomes surely are
# in the database.
ANSWERS_KEPT = 4096
_answered: deque[_FlightKey] = deque()


def in_flight() -> int:
    """Blocks being translated right now in this process, claimed by some entry."""
    with _in_flight_lock:
        return len(_in_flight)


@dataclass
class PendingMemory:
    """The memory as one entry's translation sees it: recalled from the database at once,
    remembered into ``rows``, which the entry's outcome writes (``EntryStore.save_draft``,
    ``record_entry_error``); blocks in flight for other entries are awaited, not sent."""

    store: MemoryStore
    rows: list[MemoryRow] = field(default_factory=list)
    wait: float = IN_FLIGHT_WAIT
    _claimed: dict[_FlightKey, Future[Remembered | None]] = field(default_factory=dict)

    def recall(
        self, sources: Collection[str], *, pair: LanguagePair, engines: Sequence[str], now: datetime
    ) -> dict[str, Remembered]:
        """``MemoryStore.recall``; what it lacks is claimed for this entry, or, when
        another entry claimed it first, that entry's translation is awaited."""
        found = self.store.recall(sources, pair=pair, engines=engines, now=now)
        # Per database: another database (another test, another config) has its own memory.
        scope = (str(self.store.engine.url), pair.source, pair.target, tuple(engines))
        awaited: list[tuple[str, Future[Remembered | None]]] = []
        with _in_flight_lock:  # all claims at once: later entries wait for earlier ones
            for text in sources:
                key = (*scope, text)
                if text in found or key in self._claimed:
                    continue
                flight = _in_flight.get(key)
                if flight is None:
                    flight = _in_flight[key] = self._claimed[key] = Future()
                else:
                    awaited.append((text, flight))
        for text, flight in awaited:
            try:
                answer = flight.result(timeout=self.wait)
            except FutureTimeout:
                continue
            if answer is not None:
                found[text] = answer
        return found

    def remember(
        self, translations: Iterable[tuple[str, str, str]], *, pair: LanguagePair, now: datetime
    ) -> None:
        """Keep the translations for the entry's outcome; tell the entries waiting for
        them, and let go of every other claim (they will translate those themselves)."""
        translations = list(translations)
        self.rows += memory_rows(translations, pair, now)
        answers = {
            text: Remembered(translated, engine) for engine, text, translated in translations
        }
        self.release(answers)

    def release(self, answers: dict[str, Remembered] | None = None) -> None:
        """End this entry's claims, answering those it translated. An answer stays in the
        table a while: the entry writes it to the database only with its outcome, and an
        entry starting in between must find it somewhere."""
        answers = answers or {}
        with _in_flight_lock:
            claimed, self._claimed = self._claimed, {}
            for key, flight in claimed.items():
                if _in_flight.get(key) is flight and key[-1] not in answers:
                    del _in_flight[key]
                elif key[-1] in answers:
                    _answered.append(key)
            while len(_answered) > ANSWERS_KEPT:
                old = _answered.popleft()
                if old in _in_flight and _in_flight[old].done():
                    del _in_flight[old]
        for key, flight in claimed.items():
            flight.set_result(answers.get(key[-1]))


@dataclass(frozen=True)
class FeedContext:
    """An entry's feed as the extraction stage sees it."""

    url: str  # where the feed is fetched
    site_url: str | None  # the feed's own link: the site it speaks for
    # Recent entries, newest first: each as its feed content and its full text, if any.
    recent: tuple[tuple[str, ...], ...] = ()
    # Those of them that came in the same poll as this entry.
    together: tuple[tuple[str, ...], ...] = ()


class MemoryStore(StoreBase):
    def recall(
        self, sources: Collection[str], *, pair: LanguagePair, engines: Sequence[str], now: datetime
    ) -> dict[str, Remembered]:
        """The best remembered translation of each source text: the editor's, else the
        first of ``engines`` that has one."""
        preference = {name: rank for rank, name in enumerate([EDITOR, *engines])}
        by_hash = {source_hash(text): text for text in sources}
        found: dict[str, tuple[int, int, Remembered]] = {}  # hash -> (rank, row id, memory)
        with self.session() as session:
            hashes = list(by_hash)
            for start in range(0, len(hashes), _CHUNK):
                rows = session.execute(
                    _RECALL,
                    {
                        "source_language": pair.source,
                        "target_language": pair.target,
                        "engines": list(preference),
                        "hashes": hashes[start : start + _CHUNK],
                    },
                )
                for row_id, engine, hashed, source_text, translated in rows:
                    if source_text != by_hash[hashed]:
                        continue  # a hash collision: never trust it
                    rank = preference[engine]
                    if hashed not in found or rank < found[hashed][0]:
                        found[hashed] = (rank, row_id, Remembered(translated, engine))
            used = [row_id for _rank, row_id, _memory in found.values()]
            if used:
                session.execute(_LOCK_RECALLED, {"ids": used})
                session.execute(_COUNT_USE, {"ids": used, "used_at": now})
            return {by_hash[hashed]: memory for hashed, (_r, _i, memory) in found.items()}

    def remember(
        self, translations: Iterable[tuple[str, str, str]], *, pair: LanguagePair, now: datetime
    ) -> None:
        """Keep (engine, source text, translated text) triples; a newer one replaces."""
        rows = memory_rows(translations, pair, now)
        if rows:
            with self.session() as session:
                upsert_memory(session, rows)

    def remember_correction(
        self,
        *,
        source_language: str,
        target_language: str,
        source_text: str,
        translated_text: str,
        now: datetime,
    ) -> None:
        """An editor's translation of one block, preferred to any engine's from now on.

        Both texts are in placeholder form (see ``segment.protect``); the review UI can get
        them for a whole edited draft from ``translate.corrections``. Same path as an edit
        made through ``DraftStore.edit``.
        """
        with self.session() as session:
            remember_corrections(
                session,
                [(source_text, translated_text)],
                source_language=source_language,
                target_language=target_language,
                now=now,
            )

    def feed_context(self, feed_id: int, entry_id: int, *, recent: int = 20) -> FeedContext:
        """The feed's URLs and the HTML of its ``recent`` latest entries but this one."""
        with self.session() as session:
            url, site_url = session.execute(
                select(Feed.url, Feed.site_url).where(Feed.id == feed_id)
            ).one()
            arrived = session.scalar(select(Entry.created_at).where(Entry.id == entry_id))
            rows = session.execute(
                select(Entry.content_html, Entry.summary_html, Entry.full_html, Entry.created_at)
                .where(Entry.feed_id == feed_id, Entry.id != entry_id)
                .order_by(Entry.id.desc())
                .limit(recent)
            ).all()
        versions = [
            (tuple(part for part in (content or summary, full) if part), created == arrived)
            for content, summary, full, created in rows
        ]
        return FeedContext(
            url=url,
            site_url=site_url,
            recent=tuple(v for v, _same in versions),
            together=tuple(v for v, same in versions if same),
        )

    def feed_examples(
        self,
        feed_id: int,
        *,
        limit: int = 6,
        excluding: int | None = None,
        language: str | None = None,
    ) -> list[tuple[str, str]]:
        """(original, editor's text) of the blocks and titles an editor rewrote last in the
        feed's drafts (into ``language`` only, when given), but those of the entry
        ``excluding`` (its own edits are put back over its redraft anyway): how this
        publication wants it said, for an LLM to follow."""
        with self.session() as session:
            rows = session.execute(
                select(DraftEdit.source, DraftEdit.text)
                .join(Draft, DraftEdit.draft_id == Draft.id)
                .join(Entry, Draft.entry_id == Entry.id)
                .where(
                    Entry.feed_id == feed_id,
                    DraftEdit.kind.in_(["block", "title"]),
                    Entry.id != (excluding if excluding is not None else -1),
                    Draft.target_language == language if language else true(),
                )
                .order_by(DraftEdit.updated_at.desc(), DraftEdit.id.desc())
                .limit(limit)
            ).all()
        return [(source, text) for source, text in rows]

    def memory_size(self) -> int:
        with self.session() as session:
            return session.scalar(select(func.count()).select_from(TranslationMemory)) or 0

    # ------------------------------------------------------------ usage and budgets

    def spend(self, engine: str, day: str, characters: int, *, budget: int) -> bool:
        """Count one request of ``characters`` for the engine today; False (and nothing
        counted) when it would go over ``budget`` (0: no budget)."""
        with self.session() as session:
            statement = self._usage_row(session, engine, day)
            if budget > 0:
                statement = statement.where(EngineUsage.characters + characters <= budget)
            result = session.execute(
                statement.values(
                    characters=EngineUsage.characters + characters,
                    requests=EngineUsage.requests + 1,
                )
            )
            return bool(getattr(result, "rowcount", 0))

    def spend_tokens(self, engine: str, day: str, spend: TokenSpend, budget: TokenBudget) -> bool:
        """Count the tokens and their cost for the engine today (negative: a reservation
        settled lower); False, nothing counted, past a budget."""
        with self.session() as session:
            statement = self._usage_row(session, engine, day)
            if budget.tokens > 0:
                spent = EngineUsage.prompt_tokens + EngineUsage.completion_tokens
                statement = statement.where(
                    spent + spend.prompt + spend.completion <= budget.tokens
                )
            if budget.cost > 0:
                statement = statement.where(EngineUsage.cost + spend.cost <= budget.cost)
            result = session.execute(
                statement.values(
                    prompt_tokens=EngineUsage.prompt_tokens + spend.prompt,
                    completion_tokens=EngineUsage.completion_tokens + spend.completion,
                    cost=EngineUsage.cost + spend.cost,
                )
            )
            return bool(getattr(result, "rowcount", 0))

    def _usage_row(self, session: Session, engine: str, day: str) -> Update:
        """The update of the engine's row for the day, created first if needed."""
        session.execute(
            insert_for(self.engine.dialect.name)(EngineUsage)
            .values(engine=engine, day=day, characters=0, requests=0)
            .on_conflict_do_nothing(index_elements=["engine", "day"])
        )
        return update(EngineUsage).where(EngineUsage.engine == engine, EngineUsage.day == day)

    def paused_by_budget(self) -> tuple[int, str | None]:
        """Entries waiting because every engine's daily budget was spent, and the reason."""
        with self.session() as session:
            waiting = select(Entry).where(
                Entry.state.in_([EntryState.NEW, EntryState.EXTRACTED]),
                Entry.last_error.contains(BUDGET_SPENT),
            )
            rows = session.scalars(waiting.order_by(Entry.updated_at.desc())).all()
            return len(rows), (rows[0].last_error if rows else None)

    def usage(self, day: str) -> dict[str, Usage]:
        """Characters and requests per engine on one UTC day (YYYY-MM-DD)."""
        with self.session() as session:
            rows = session.scalars(select(EngineUsage).where(EngineUsage.day == day))
            return {row.engine: Usage(row.characters, row.requests) for row in rows}


def memory_rows(
    translations: Iterable[tuple[str, str, str]], pair: LanguagePair, now: datetime
) -> list[MemoryRow]:
    """Rows for (engine, source text, translated text) triples."""
    return [
        {
            "source_language": pair.source,
            "target_language": pair.target,
            "engine": engine,
            "source_hash": source_hash(source),
            "source_text": source,
            "translated_text": translated,
            "uses": 0,
            "created_at": now,
            "used_at": now,
        }
        for engine, source, translated in translations
    ]


def upsert_memory(session: Session, rows: Sequence[MemoryRow]) -> None:
    """Insert memory rows, replacing the translation of a block already known."""
    if not rows:
        return
    unique = {(r["engine"], r["source_hash"]): r for r in rows}  # last one wins
    statement = _memory_upsert(session.get_bind().dialect.name)
    session.execute(statement, [unique[key] for key in sorted(unique)])  # one lock order


@lru_cache(maxsize=2)
def _memory_upsert(dialect: str) -> Insert:
    statement = insert_for(dialect)(MEMORY)
    return statement.on_conflict_do_update(
        index_elements=["source_language", "target_language", "engine", "source_hash"],
        set_={
            "translated_text": statement.excluded.translated_text,
            "source_text": statement.excluded.source_text,
            "used_at": statement.excluded.used_at,
        },
    )


def record_usage(session: Session, counts: Iterable[UsageCount]) -> None:
    """Add engines' use (no budget to check) to the day's totals, inside an open session.
    Taken last in a transaction and in one order: the rows are shared by every worker."""
    totals: dict[tuple[str, str], list[int]] = {}
    for engine, day, characters, requests in counts:
        total = totals.setdefault((engine, day), [0, 0])
        total[0] += characters
        total[1] += requests
    if not totals:
        return
    session.execute(
        _usage_add(session.get_bind().dialect.name),
        [
            {"engine": engine, "day": day, "characters": characters, "requests": requests}
            for (engine, day), (characters, requests) in sorted(totals.items())
        ],
    )


def remember_corrections(
    session: Session,
    corrections: Iterable[tuple[str, str]],
    *,
    source_language: str,
    target_language: str,
    now: datetime,
) -> int:
    """Keep (source text, editor's text) pairs inside an open session; how many were kept."""
    edits = ((EDITOR, source, edited) for source, edited in corrections)
    rows = memory_rows(edits, LanguagePair(source_language, target_language), now)
    upsert_memory(session, rows)
    return len(rows)


def learn_from_edit(
    session: Session, draft: Draft, edited_html: str, now: datetime, rules: EditRules
) -> int:
    """Inside a draft edit: every block the editor rewrote becomes that block's preferred
    translation. Skipped when the original changed after the draft was made (the blocks
    would not pair up). How many blocks were kept."""
    source_html = draft.entry.full_html
    if not source_html or draft.source_changed_at is not None:
        return 0
    return remember_corrections(
        session,
        rules.corrections(source_html, draft.body_html, edited_html),
        source_language=draft.source_language,
        target_language=draft.target_language,
        now=now,
    )


@lru_cache(maxsize=2)
def _usage_add(dialect: str) -> Insert:
    statement = insert_for(dialect)(USAGE)
    return statement.on_conflict_do_update(
        index_elements=["engine", "day"],
        set_={
            "characters": USAGE.c.characters + statement.excluded.characters,
            "requests": USAGE.c.requests + statement.excluded.requests,
        },
    )
