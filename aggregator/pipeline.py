"""One function per stage of the flow; the decisions they apply live in ``decide``.

    polling.poll_feeds: claim due feeds -> refresh_feed each (fetch, parse, store entries)
    process_backlog: claim waiting entries -> process_entry each
        (rules -> full text -> language -> translate -> draft -> auto publication)

State lives in the database: every function claims its work there, does its I/O with no
session open, and writes the outcome back. Every stage is safe to run twice.

May import the base modules, ``store``, ``extraction``, ``translation`` and polling's
leaves (``fetch``, ``connect``, ``decide``: HTTP and pure decisions); polling's feed stage
builds on this module, never the other way round. Where the article is taken from (the
feed or its page) is ``full_text``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aggregator import transitions
from aggregator.clock import utc_now
from aggregator.config import Settings
from aggregator.config_checks import ENGINES
from aggregator.errors import AggregatorError, ConfigError, UnexpectedError
from aggregator.extraction.extract import Article, extract_article, text_of
from aggregator.extraction.extract_worker import extract_article as isolated_extract
from aggregator.extraction.extract_worker import release_idle as release_extraction_children
from aggregator.extraction.language import detect
from aggregator.feed_rules import EntryFacts, FeedRules
from aggregator.full_text import dropped_warnings, feed_text, link_to_original, take_full_text
from aggregator.models import EntryState
from aggregator.polling import decide
from aggregator.polling.fetch import Fetcher
from aggregator.store import DraftContent, EntryWork, PendingMemory, Progress, Store
from aggregator.translation import kept
from aggregator.translation.chain import BreakerBoard, EngineChain, GuardedEngine
from aggregator.translation.engines import Engine, build_engine, build_engines
from aggregator.translation.glossary import Glossary
from aggregator.translation.llm import LLMEngine
from aggregator.translation.translate import translate_article

log = logging.getLogger("aggregator.pipeline")


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
    # How an article page becomes the article: in a child process, with a deadline
    # (``extract_worker``); tests pass their own to make it fail.
    extract: Callable[[str | bytes, str], Article] = extract_article
    # Engines only some feeds use (``[[feeds]] engine``), by name.
    feed_engines: dict[str, Engine] = field(default_factory=dict)
    # Engines into the other target languages (``[[feeds]] languages``), by language and
    # name, built when first needed.
    _other_languages: dict[tuple[str, str], Engine] = field(default_factory=dict, repr=False)
    _engines_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, store: Store, clock: Callable[[], datetime] = utc_now
    ) -> Services:
        translation = settings.translation
        engine, *fallback = build_engines(translation)
        chained = {translation.engine, *translation.fallback}
        timeout = float(settings.fetch.extract_timeout)
        return cls(
            settings=settings,
            store=store,
            fetcher=Fetcher(settings.fetch),
            extract=lambda page, url: isolated_extract(page, url, timeout=timeout),
            engine=engine,
            clock=clock,
            fallback=tuple(fallback),
            breakers=BreakerBoard(
                translation.breaker_threshold, float(translation.breaker_cooldown)
            ),
            feed_engines={
                name: build_engine(translation, name)
                for name in dict.fromkeys(feed.engine for feed in settings.feeds)
                if name and name not in chained
            },
        )

    def engines_for(self, engine: str = "", language: str = "") -> tuple[Engine, ...]:
        """The engines of an article whose feed names ``engine`` (``[[feeds]] engine``):
        that one, then the configured fallbacks without it; unnamed: the configured chain.
        Into ``language``, when it is not [translation] target_language: the same engines,
        built for that language on first use."""
        configured = (self.engine, *self.fallback)
        chosen = configured
        if engine and engine != self.engine.name:
            known = {e.name: e for e in (*configured, *self.feed_engines.values())}
            if engine not in known:
                raise ConfigError(
                    f"the feeds' engine {engine!r} was not built (restart the daemon)"
                )
            chosen = (known[engine], *(e for e in self.fallback if e.name != engine))
        if not language or language == self.settings.translation.target_language:
            return chosen
        return tuple(self._engine_into(language, each.name) for each in chosen)

    def _engine_into(self, language: str, name: str) -> Engine:
        with self._engines_lock:
            key = (language, name)
            if key not in self._other_languages:
                translation = self.settings.translation.for_language(language)
                self._other_languages[key] = build_engine(translation, name)
            return self._other_languages[key]

    def engine_chain(self, engine: str = "", language: str = "") -> EngineChain:
        """The engines one article may use into ``language`` (default: [translation]
        target_language), each behind its breaker and that language pair's daily budget."""
        translation = self.settings.translation
        pair = "" if language in ("", translation.target_language) else language
        return EngineChain(
            [
                GuardedEngine(
                    each,
                    self.breakers[each.name],
                    ledger=self.store,
                    daily_characters=(
                        translation.engine_settings(each.name).daily_characters
                        if each.name in ENGINES
                        else 0
                    ),
                    now=self.clock,
                    pair=pair,
                )
                for each in self.engines_for(engine, language)
            ]
        )

    def now(self) -> datetime:
        """The injected clock's moment: what every stage of this process calls "now"."""
        return self.clock()

    def close(self) -> None:
        self.fetcher.close()
        release_extraction_children()


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
    seen: set[int] = set()  # ids this run has claimed; the highest is the cursor
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
    """Claim due entries this run has not yet taken; the others are given back.

    Claims start after the newest entry this run took, so the run goes through the backlog
    once, oldest first: with retry_failed an entry that fails again is due again at once,
    and without the cursor the oldest failing ones would be all the run ever claims.
    """
    claimed = services.store.claim_entries(
        services.clock(),
        timedelta(seconds=services.settings.schedule.lease),
        limit,
        retry_failed=retry_failed,
        after=max(seen, default=0),
    )
    fresh = [entry for entry in claimed if entry.id not in seen]
    services.store.release_entries(entry.id for entry in claimed if entry.id in seen)
    seen.update(entry.id for entry in fresh)
    return fresh


def process_entry(services: Services, entry: EntryWork, report: Report) -> None:
    """The feed's rules, full text, language, translation, draft (and, for a feed with
    ``review = "auto"``, its publication). A failure is stored and retried later.

    The outcome is one write, carrying what was done on the way (``Progress``).
    """
    store, settings = services.store, services.settings
    feed = settings.feed(entry.feed_config_url)
    title_only = feed.translate == "title"
    progress = Progress()
    try:
        full_html, language = entry.full_html, entry.language
        # A new entry, or one whose source changed (its state is back to new), is read again;
        # a title-only one always (it costs no I/O), so its body is never an older article
        # text stored before the feed's ``translate`` changed.
        if full_html is None or entry.state == EntryState.NEW or title_only:
            rules = FeedRules.parse(feed.include, feed.exclude)
            # The feed's rules first: an entry they refuse costs no fetch and no translation.
            extracted = rules.refusal(facts_of(entry)) or (
                link_to_original(entry) if title_only else take_full_text(services, entry)
            )
            if isinstance(extracted, str):
                store.mark_skipped(entry.id, extracted, now=services.clock())
                report.entry("skipped")
                log.info("entry %s skipped: %s", entry.url or entry.id, extracted)
                return
            full_html, progress.full_text_source = extracted
            # Title only: the article is not read, so the feed's text stands for it.
            text = text_of(feed_text(entry) if title_only else full_html)
            progress.full_html = full_html
            refusal = rules.refusal(facts_of(entry, text)) if rules.need_text else None
            if refusal is not None:
                store.mark_skipped(entry.id, refusal, now=services.clock(), progress=progress)
                report.entry("skipped")
                log.info("entry %s skipped: %s", entry.url or entry.id, refusal)
                return
            language = detect(f"{entry.title}\n{text}")
            progress.language = language
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
        languages = transitions.languages_to_draft(
            settings.feed_languages(entry.feed_config_url), entry.drafts
        )
        memory = PendingMemory(store)
        engine = settings.feed_engine(entry.feed_config_url)
        chains: list[EngineChain] = []
        contents: list[DraftContent] = []
        try:
            # One draft per target language, all or none: an entry drafted in one language
            # and failing in the next is retried whole, the first from the memory.
            for target in languages:
                chain = services.engine_chain(engine, target)
                chains.append(chain)
                contents.append(
                    draft_in(services, entry, chain, target, language, full_html, memory)
                )
        finally:
            progress.learned = memory.rows
            progress.usage = [use for chain in chains for use in chain.unrecorded_usage()]
        draft_ids = store.save_drafts(
            entry.id, contents, now=services.clock(), progress=progress, edit_rules=kept
        )
        report.entry("drafted", len(draft_ids))
        if feed.review == "auto":
            for draft_id in draft_ids:
                publish_if_clean(services, draft_id, feed.review, report)
    except AggregatorError as exc:
        now = services.clock()
        retry_after = exc.retry_after  # every error says when trying again may work
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
    except Exception as exc:
        # A bug or a library's surprise is this entry's error, not the end of the run.
        log.error("entry %s failed unexpectedly", entry.url or entry.id, exc_info=True)
        unexpected = UnexpectedError(f"unexpected error ({type(exc).__name__}: {exc})")
        now = services.clock()
        store.record_entry_error(
            entry.id,
            str(unexpected),
            now=now,
            next_attempt_at=decide.next_attempt_after_error(now, attempts=entry.attempts + 1),
            progress=progress,
        )
        report.entry("failed", error=f"{entry.url or entry.title}: {unexpected}")


def draft_in(
    services: Services,
    entry: EntryWork,
    chain: EngineChain,
    target: str,
    source: str,
    full_html: str,
    memory: PendingMemory,
) -> DraftContent:
    """The entry's draft into the language ``target``: the title and article translated
    through ``chain``, with that pair's memory and glossary (raises TranslateError unless
    complete). A title-only feed's body is the link to the original, as it is."""
    settings = services.settings
    title_only = settings.feed(entry.feed_config_url).translate == "title"
    uses_llm = any(isinstance(g.engine, LLMEngine) for g in chain.engines)
    # An LLM is shown how the editors rewrote this feed's earlier articles in this language.
    examples = (
        services.store.feed_examples(entry.feed_id, excluding=entry.id, language=target)
        if uses_llm
        else []
    )
    translation = translate_article(
        entry.title,
        "" if title_only else full_html,  # title only: the link stays as it is
        chain,
        target_language=target,
        source_language=source,
        source_languages=settings.translation.source_languages,
        memory=memory,
        glossary=Glossary.from_settings(settings.translation.glossary_for(target)),
        examples=examples,
        now=services.clock,
    )
    return DraftContent(
        title=translation.title,
        body_html=full_html if title_only else translation.body_html,
        source_language=source,
        target_language=target,
        engine=translation.engine,
        characters=translation.characters,
        requests=translation.requests,
        warnings=(*dropped_warnings(full_html), *translation.warnings),
        prompt_tokens=translation.prompt_tokens if uses_llm else None,
        completion_tokens=translation.completion_tokens if uses_llm else None,
        cost=translation.cost,
        headline=translation.headline or None,
    )


def facts_of(entry: EntryWork, text: str | None = None) -> EntryFacts:
    """What the feed's ``include``/``exclude`` rules look at; ``text`` None before the
    article is read."""
    return EntryFacts(entry.title, entry.author or "", entry.categories, text)


def publish_if_clean(services: Services, draft_id: int, review: str, report: Report) -> None:
    """A feed with ``review = "auto"``: publish the new draft at once, unreviewed, when it
    leaves nothing to look at (``transitions.publishes_unreviewed``); else it waits for an
    editor, as every draft does. The draft is saved first: should publishing fail, it is
    still there, pending, for an editor."""
    draft = services.store.get_draft(draft_id)
    if not transitions.publishes_unreviewed(review, draft.warnings, bool(draft.flags)):
        return
    try:
        services.store.publish_unreviewed(draft_id, now=services.clock())
    except AggregatorError as exc:  # an editor acted on it meanwhile: theirs is the word
        log.warning("draft %s left for an editor: %s", draft_id, exc)
        return
    report.entry("published")
    log.info('draft %s published unreviewed (review = "auto")', draft_id)
