"""One function per stage of the flow; the decisions they apply live in ``decide``.

    polling.poll_feeds: claim due feeds -> refresh_feed each (fetch, parse, store entries)
    process_backlog: claim waiting entries -> process_entry each
        (full text -> language -> translate -> draft)

State lives in the database: every function claims its work there, does its I/O with no
session open, and writes the outcome back. Every stage is safe to run twice.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aggregator import decide
from aggregator.boilerplate import remove_boilerplate
from aggregator.chain import BreakerBoard, EngineChain, GuardedEngine
from aggregator.config import ENGINES, Settings
from aggregator.engines import Engine, build_engines
from aggregator.errors import AggregatorError, FetchError, TranslateError
from aggregator.extract import (
    extract_article,
    feed_content_is_full,
    paywall_reason,
    sanitize,
    text_of,
)
from aggregator.fetch import Fetcher
from aggregator.glossary import Glossary
from aggregator.language import detect
from aggregator.models import EntryState
from aggregator.store import DraftContent, EntryWork, PendingMemory, Progress, Store
from aggregator.translate import translate_article

log = logging.getLogger("aggregator.pipeline")

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """What the stages need, built once per process."""

    settings: Settings
    store: Store
    fetcher: Fetcher
    engine: Engine  # [translation] engine
    clock: Callable[[], datetime] = utc_now
    fallback: tuple[Engine, ...] = ()  # [translation] fallback, in order
    breakers: BreakerBoard = field(default_factory=BreakerBoard)

    @classmethod
    def build(cls, settings: Settings, store: Store) -> Services:
        translation = settings.translation
        engine, *fallback = build_engines(translation)
        return cls(
            settings=settings,
            store=store,
            fetcher=Fetcher(settings.fetch),
            engine=engine,
            fallback=tuple(fallback),
            breakers=BreakerBoard(
                translation.breaker_threshold, float(translation.breaker_cooldown)
            ),
        )

    def engine_chain(self) -> EngineChain:
        """The engines one article may use, each behind its breaker and daily budget."""
        translation = self.settings.translation
        return EngineChain(
            [
                GuardedEngine(
                    engine,
                    self.breakers[engine.name],
                    ledger=self.store,
                    daily_characters=(
                        translation.engine_settings(engine.name).daily_characters
                        if engine.name in ENGINES
                        else 0
                    ),
                    now=self.clock,
                )
                for engine in (self.engine, *self.fallback)
            ]
        )

    @staticmethod
    def now() -> datetime:
        return utc_now()

    def close(self) -> None:
        self.fetcher.close()


@dataclass
class Report:
    """What a run did, for the summary a person reads."""

    feeds: Counter[str] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def feed(self, outcome: str, error: str | None = None) -> None:
        with self._lock:
            self.feeds[outcome] += 1
            if error:
                self.errors.append(error)

    def entry(self, outcome: str, count: int = 1, error: str | None = None) -> None:
        with self._lock:
            self.entries[outcome] += count
            if error:
                self.errors.append(error)


# ---------------------------------------------------------------- entries


def process_backlog(
    services: Services,
    *,
    retry_failed: bool = False,
    report: Report | None = None,
    batch_size: int = 4,
    workers: int = 4,
    until_idle: bool = True,
    on_progress: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Report:
    """Take waiting entries through full text, language, translation and drafting.

    ``workers`` entries are in flight at once; as soon as one is done the next starts, and
    more are claimed, ``batch_size`` at a time, when none is left waiting: no entry waits
    for the slowest of a batch. Once ``should_stop`` says so, nothing more starts and the
    entries claimed but not started are given back at once.
    """
    report = report or Report()
    seen: set[int] = set()
    waiting: deque[EntryWork] = deque()
    running: set[Future[None]] = set()
    claiming = True

    def one(entry: EntryWork) -> None:
        try:
            process_entry(services, entry, report)
        finally:
            if on_progress:
                on_progress()

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            while True:
                stopping = should_stop()
                if claiming and not waiting and not stopping:
                    fresh = _claim_unseen(services, batch_size, retry_failed, seen)
                    waiting.extend(fresh)
                    claiming = bool(fresh) and until_idle
                while waiting and len(running) < workers and not stopping:
                    running.add(pool.submit(one, waiting.popleft()))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # an unexpected error ends the run, as it should
    finally:
        services.store.release_entries(entry.id for entry in waiting)
    return report


def _claim_unseen(
    services: Services, limit: int, retry_failed: bool, seen: set[int]
) -> list[EntryWork]:
    """Claim due entries this run has not yet taken; the others are given back."""
    claimed = services.store.claim_entries(
        services.clock(),
        timedelta(seconds=services.settings.schedule.lease),
        limit,
        retry_failed=retry_failed,
    )
    # With retry_failed an entry that fails again is due again at once: once is enough.
    fresh = [entry for entry in claimed if entry.id not in seen]
    services.store.release_entries(entry.id for entry in claimed if entry.id in seen)
    seen.update(entry.id for entry in fresh)
    return fresh


def process_entry(services: Services, entry: EntryWork, report: Report) -> None:
    """Full text, language, translation, draft. A failure is stored and retried later.

    The outcome is one write, carrying what was done on the way (``Progress``).
    """
    store, settings = services.store, services.settings
    progress = Progress()
    try:
        full_html, language = entry.full_html, entry.language
        # A new entry, or one whose source changed (its state is back to new), is read again.
        if full_html is None or entry.state == EntryState.NEW:
            extracted = take_full_text(services, entry)
            if isinstance(extracted, str):
                store.mark_skipped(entry.id, extracted, now=services.clock())
                report.entry("skipped")
                log.info("entry %s skipped: %s", entry.url or entry.id, extracted)
                return
            full_html, progress.full_text_source = extracted
            language = detect(f"{entry.title}\n{text_of(full_html)}")
            progress.full_html, progress.language = full_html, language
        wanted = settings.translation.source_languages
        if language not in wanted:
            reason = (
                f"language is {language!r}, not one of {', '.join(wanted)}"
                if language
                else "the language could not be detected (too little text)"
            )
            store.mark_skipped(
                entry.id, f"not translated: {reason}", now=services.clock(), progress=progress
            )
            report.entry("skipped")
            return
        chain = services.engine_chain()
        memory = PendingMemory(store)
        try:
            translation = translate_article(
                entry.title,
                full_html,
                chain,
                target_language=settings.translation.target_language,
                source_language=language,
                source_languages=wanted,
                memory=memory,
                glossary=Glossary.from_settings(settings.translation.glossary),
                now=services.clock,
            )
        finally:
            progress.learned, progress.usage = memory.rows, chain.unrecorded_usage()
        store.save_draft(
            entry.id,
            DraftContent(
                title=translation.title,
                body_html=translation.body_html,
                source_language=language,
                target_language=settings.translation.target_language,
                engine=translation.engine,
                characters=translation.characters,
                requests=translation.requests,
                warnings=translation.warnings,
            ),
            now=services.clock(),
            progress=progress,
        )
        report.entry("drafted")
    except AggregatorError as exc:
        now = services.clock()
        retry_after = exc.retry_after if isinstance(exc, TranslateError | FetchError) else None
        store.record_entry_error(
            entry.id,
            str(exc),
            now=now,
            next_attempt_at=decide.next_attempt_after_error(
                now,
                attempts=entry.attempts + 1,
                retry_after=timedelta(seconds=retry_after) if retry_after is not None else None,
            ),
            progress=progress,
        )
        report.entry("failed", error=f"{entry.url or entry.title}: {exc}")
        log.warning("entry %s failed: %s", entry.url or entry.id, exc)


def take_full_text(services: Services, entry: EntryWork) -> tuple[str, str] | str:
    """(sanitized article HTML, where it came from), or the reason to skip the entry.

    Members-only previews are recognised from the feed when it says so, else from the page,
    and skipped with the reason before anything is sent to translation.
    """
    base = entry.url or ""
    reason = paywall_reason(entry.content_html) or paywall_reason(entry.summary_html)
    if reason:
        return reason
    if feed_content_is_full(entry.content_html, entry.summary_html):
        return sanitize(remove_boilerplate(entry.content_html or ""), base or None), "feed"
    feed_text = entry.content_html or entry.summary_html or ""
    if not entry.url:
        if feed_text.strip():
            return sanitize(remove_boilerplate(feed_text)), "feed"
        return "the entry has no text and no link to an article"
    # A link from feed content is untrusted: the fetcher's SSRF guard applies.
    page = services.fetcher.get(entry.url, accept=PAGE_ACCEPT)
    reason = paywall_reason(page.body.decode("utf-8", "replace"))
    if reason:
        return reason
    return extract_article(page.body, page.url).html, "page"
