"""The engines an article may use, in order: circuit breakers, daily budgets, fallback.

Each engine is guarded twice before a request leaves: its circuit breaker (closed after
``breaker_threshold`` failures in a row, or at once when the service sent Retry-After) and
its daily character budget, spent in the database before the request is sent, so that a
budget is never overrun by concurrent workers. An engine without a budget has nothing to
reserve: its use is counted here and written with the article's outcome, in the same
transaction (``unrecorded_usage``). A guarded engine that refuses or fails
makes the article continue with the next engine of the chain; when none is left, the
translation fails with every reason, and the entry waits for the earliest moment one of
them may work again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from aggregator.clock import utc_now
from aggregator.errors import BudgetExhaustedError, TranslateError
from aggregator.languages import usage_account
from aggregator.models import UsageCount
from aggregator.spending import NO_BUDGET, TokenBudget, TokenSpend
from aggregator.translation.engines import Engine
from aggregator.translation.llm import BatchAnswer, BatchRequest, LLMEngine

MAX_COOLDOWN = 3600.0
_Result = TypeVar("_Result")


class UsageLedger(Protocol):
    def spend(self, engine: str, day: str, characters: int, *, budget: int) -> bool:
        """Count a request if it fits in the day's budget (0: none); False if it does not."""

    def spend_tokens(self, engine: str, day: str, spend: TokenSpend, budget: TokenBudget) -> bool:
        """Count the tokens and their cost if they fit in the day's budgets."""


@dataclass
class CircuitBreaker:
    """Stops calling an engine that keeps failing; lets one trial call through later.

    Open after ``threshold`` consecutive failures for ``cooldown`` seconds, doubled each time
    it opens again without a success in between (capped at an hour); a Retry-After opens it
    for exactly that long.
    """

    name: str
    threshold: int = 3
    cooldown: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    open_until: float = 0.0
    openings: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self) -> None:
        """TranslateError while open."""
        with self._lock:
            wait = self.open_until - self.clock()
        if wait > 0:
            raise TranslateError(
                f"{self.name}: paused for {wait:.0f} s after repeated failures",
                retry_after=wait,
            )

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.openings = 0
            self.open_until = 0.0

    def failure(self, retry_after: float | None = None) -> None:
        with self._lock:
            self.failures += 1
            now = self.clock()
            if retry_after is not None and retry_after > 0:
                self.open_until = max(self.open_until, now + min(retry_after, 24 * 3600.0))
                self.openings += 1
            elif self.failures >= self.threshold:
                self.open_until = now + min(self.cooldown * 2**self.openings, MAX_COOLDOWN)
                self.openings += 1
                # Half-open once the pause ends: one more failure opens it again.
                self.failures = self.threshold - 1


@dataclass
class GuardedEngine:
    """An engine with its breaker and budget; what the article's translation calls."""

    engine: Engine
    breaker: CircuitBreaker
    ledger: UsageLedger | None = None
    daily_characters: int = 0
    now: Callable[[], datetime] = utc_now
    characters: int = 0  # sent through this object
    requests: int = 0
    prompt_tokens: int = 0  # LLM engines: what the service counted
    completion_tokens: int = 0
    # Use not yet in the ledger (no budget to check): day -> [characters, requests].
    unrecorded: dict[str, list[int]] = field(default_factory=dict)
    # What the ledger counts this use under, and its budgets apply to: each language pair
    # has its own ("libre" into [translation] target_language, "libre:es" into Spanish).
    pair: str = ""

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def account(self) -> str:
        return usage_account(self.engine.name, self.pair)

    def _account(self, ledger: UsageLedger, characters: int) -> None:
        """Reserve the characters in the ledger when there is a budget (refused: raise),
        else count them for ``EngineChain.unrecorded_usage``."""
        day = self._today()
        if self.daily_characters <= 0:
            counts = self.unrecorded.setdefault(day, [0, 0])
            counts[0] += characters
            counts[1] += 1
            return
        if not ledger.spend(self.account, day, characters, budget=self.daily_characters):
            raise self._spent(f"{self.daily_characters:,} characters")

    def _today(self) -> str:
        return self.now().astimezone(UTC).date().isoformat()

    def _spent(self, budget: str) -> BudgetExhaustedError:
        moment = self.now().astimezone(UTC)
        midnight = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), UTC)
        return BudgetExhaustedError(
            f"{self.name}{f' into {self.pair}' if self.pair else ''}: translation paused, "
            f"the daily budget of {budget} is spent; "
            "it resumes at 00:00 UTC",
            retry_after=(midnight - moment).total_seconds(),
        )

    def translate(self, text: str) -> str:
        """Translate if breaker and budget allow; count what was actually sent."""
        return self._call(len(text), lambda: self.engine.translate(text))

    def ask(self, request: BatchRequest) -> BatchAnswer:
        """One batch of units to an LLM engine, under the same breaker and accounting."""
        engine = self.engine
        if not isinstance(engine, LLMEngine):
            raise TypeError(f"{self.name} does not take batches of units")
        self.breaker.check()
        reserved = self._reserve_tokens(engine, request)
        answer: BatchAnswer | None = None
        try:
            answer = self._call(request.characters, lambda: engine.ask(request))
        finally:
            if reserved is not None and self.ledger is not None:
                day, estimate = reserved
                real = engine.spend(*answer.tokens) if answer else TokenSpend(0, 0)
                self.ledger.spend_tokens(self.account, day, real - estimate, NO_BUDGET)
        self.prompt_tokens += answer.prompt_tokens
        self.completion_tokens += answer.completion_tokens
        return answer

    def _reserve_tokens(
        self, engine: LLMEngine, request: BatchRequest
    ) -> tuple[str, TokenSpend] | None:
        """The most this request may cost, reserved in the ledger before it leaves, so that
        workers together never overrun the day's budgets; settled once the answer is in."""
        if self.ledger is None:
            return None
        day = self._today()
        estimate = engine.spend(engine.prompt_tokens(request), engine.max_answer_tokens(request))
        budget = engine.budget
        if not self.ledger.spend_tokens(self.account, day, estimate, budget):
            described = [f"{budget.tokens:,} tokens"] if budget.tokens else []
            if budget.cost:
                described.append(f"{budget.cost:g} in cost (translation.llm.daily_cost)")
            raise self._spent(" and ".join(described))
        return day, estimate

    def _call(self, characters: int, call: Callable[[], _Result]) -> _Result:
        self.breaker.check()
        if self.ledger is not None:
            self._account(self.ledger, characters)
        self.characters += characters
        self.requests += 1
        try:
            result = call()
        except TranslateError as exc:
            self.breaker.failure(exc.retry_after)
            raise
        self.breaker.success()
        return result


@dataclass
class EngineChain:
    engines: Sequence[GuardedEngine]

    @property
    def names(self) -> list[str]:
        return [guarded.name for guarded in self.engines]

    def unrecorded_usage(self) -> list[UsageCount]:
        """The use of engines without a budget, for the ledger; counted once: taken here."""
        counts = [
            (guarded.account, day, characters, requests)
            for guarded in self.engines
            for day, (characters, requests) in guarded.unrecorded.items()
        ]
        for guarded in self.engines:
            guarded.unrecorded.clear()
        return counts

    @classmethod
    def of(cls, engine: Engine | EngineChain) -> EngineChain:
        """A bare engine as a chain of one, without budget."""
        if isinstance(engine, EngineChain):
            return engine
        return cls([GuardedEngine(engine, CircuitBreaker(engine.name))])


def exhausted(failures: Sequence[TranslateError]) -> TranslateError:
    """The error for a chain with no engine left: every reason, the earliest retry."""
    if not failures:
        return TranslateError("no translation engine is configured")
    waits = [f.retry_after for f in failures]
    retry_after = None if any(w is None for w in waits) else min(w for w in waits if w is not None)
    message = "; ".join(dict.fromkeys(str(f) for f in failures))
    if all(isinstance(f, BudgetExhaustedError) for f in failures):
        return BudgetExhaustedError(message, retry_after=retry_after)
    return TranslateError(message, retry_after=retry_after)


class BreakerBoard:
    """One circuit breaker per engine for the whole process, shared by every worker."""

    def __init__(
        self, threshold: int = 3, cooldown: float = 60.0, clock: Callable[[], float] | None = None
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock or time.monotonic
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> CircuitBreaker:
        with self._lock:
            if name not in self._breakers:
                self._breakers[name] = CircuitBreaker(
                    name, threshold=self.threshold, cooldown=self.cooldown, clock=self.clock
                )
            return self._breakers[name]
