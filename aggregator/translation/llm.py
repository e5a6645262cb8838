"""OpenAI-compatible chat-completions engines (OpenAI, Ollama, vLLM, llama.cpp, Mistral, …).

An article goes in as numbered units, batched to ``batch_tokens``, and must come back as the
same ids with the same placeholders; every answer is checked and what is wrong is asked again.

Wire format (also /tmp/brief/llm-wire.md). ``POST {base_url}/chat/completions`` through the
official ``openai`` client (``max_retries=0``: the chain retries; its ``timeout``), with
``stream: false``, ``response_format: {"type": "json_object"}``, ``max_tokens`` and two
messages: the instructions (``system``, the prompt template rendered) and the work (``user``,
the last user message), one JSON object::

    {"source_language": "en", "target_language": "fr",
     "title": "The article's title",                      # context only
     "before": ["units just before the batch"], "after": ["units just after it"],
     "glossary": {"keep": ["OpenAI"], "force": {"newsletter": "infolettre"}},
     "examples": [{"source": "…", "translation": "…"}],   # the editor's corrections, may be []
     "headline": true,                                    # only when a headline is wanted
     "units": [{"id": "u1", "text": "Read [[1]]the report[[/1]] by [[2]] now."}]}

Ids are ``u`` and a number, unique in the request and not always contiguous (a re-ask sends
only the units that failed). ``[[n]]…[[/n]]`` wrap inline markup, a lone ``[[n]]`` stands for
something opaque (an image, code, a glossary term): each comes back exactly once. The answer,
``choices[0].message.content``, is one JSON object (a ```json fence is tolerated)::

    {"units": [{"id": "u1", "text": "Lisez [[1]]le rapport[[/1]] de [[2]] maintenant."}],
     "headline": "Un titre écrit pour des lecteurs français"}    # only when asked

``finish_reason`` must be ``stop`` (``length``: the answer is cut, and refused);
``usage.prompt_tokens`` and ``usage.completion_tokens`` are what the request cost. A 429's
``retry-after`` or ``x-ratelimit-reset-requests`` / ``-tokens`` ("1s", "6m0s", "120ms")
pause the engine for that long.

Repair (``translate_texts``): a unit that failed (missing, duplicated, merged into its
neighbour, placeholders lost, left in English, chatter) is asked again alone with the other
failures of its batch; a batch that keeps failing, or whose answer was cut, is halved; what
still fails goes to the next engine of the chain. Tokens are estimated at four characters
each, the rule of thumb for English with OpenAI's tokenizers.
"""

from __future__ import annotations

import json
import math
import re
import string
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError

from aggregator.config import LLMSettings, TranslationSettings
from aggregator.errors import BudgetExhaustedError, ConfigError, TranslateError
from aggregator.spending import TokenBudget, TokenSpend

PROMPT_VERSION = "llm-v2"
# Before the operator's own rules ([translation.llm] style), after the shipped house style.
STYLE_HEADING = "# This publication's own rules (where they differ from the above, follow them)"
CHARS_PER_TOKEN = 4
MAX_ATTEMPTS = 3  # requests a unit may take on one engine before the next engine gets it
DEFAULT_RETRY_AFTER = 60.0
# Tokens an answer may take beyond its units' own: the JSON around each unit, the headline.
_ANSWER_TOKENS_PER_UNIT = 16
_ANSWER_TOKENS_HEADLINE = 64
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_CHATTER = re.compile(
    r"^\s*(?:voici|here is|here's|translation\s*:|traduction\s*:|sure[,!])", re.IGNORECASE
)
_RESET = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_RESET_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class BatchRequest:
    """One request: units to translate, (id, text) each, and what the model sees around them."""

    units: Sequence[tuple[str, str]]
    title: str = ""
    before: Sequence[str] = ()
    after: Sequence[str] = ()
    examples: Sequence[tuple[str, str]] = ()
    keep: Sequence[str] = ()
    force: Mapping[str, str] = field(default_factory=dict)
    headline: bool = False

    @property
    def characters(self) -> int:
        return sum(len(text) for _id, text in self.units)


@dataclass
class BatchAnswer:
    """What came back: well-formed texts by id, and what was wrong with the rest."""

    texts: dict[str, str]
    problems: dict[str, str]  # unit id -> what was wrong with it
    problem: str | None = None  # wrong with the whole answer: every unit failed
    cut: bool = False  # finish_reason = "length": smaller batches may fit
    headline: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> tuple[int, int]:
        return self.prompt_tokens, self.completion_tokens


@dataclass
class LLMEngine:
    """One OpenAI-compatible endpoint and model; one pooled client, safe across threads."""

    settings: LLMSettings
    instructions: str
    source: str = "en"
    target: str = "fr"
    timeout: float = 60.0
    name: str = "llm"
    table: str = "translation.llm"  # where it is configured, for messages
    max_chars: int = 0  # the line-by-line path's (pieces of a unit between its markup)
    max_url_bytes: int = 0
    _client: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.max_chars = self.max_chars or self.settings.batch_tokens * CHARS_PER_TOKEN

    def _openai(self) -> Any:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(
                    base_url=self.settings.base_url,
                    # Local servers (Ollama, llama.cpp) want no key; the client wants one.
                    api_key=self.settings.api_key or "none",
                    timeout=self.timeout,
                    max_retries=0,  # the chain's breaker and the entry's backoff retry
                )
            return self._client

    @property
    def priced(self) -> bool:
        """Has it prices (translation.llm.price_*_per_mtok), which make tokens money?"""
        return self.settings.price_input_per_mtok > 0 or self.settings.price_output_per_mtok > 0

    @property
    def adapts_headline(self) -> bool:
        """Does it propose a headline written for French readers (``headline = "adapt"``)?"""
        return self.settings.headline == "adapt"

    @property
    def budget(self) -> TokenBudget:
        return TokenBudget(self.settings.daily_tokens, self.settings.daily_cost)

    def spend(self, prompt_tokens: int, completion_tokens: int) -> TokenSpend:
        """The tokens with their cost at the configured prices."""
        cost = (
            prompt_tokens * self.settings.price_input_per_mtok
            + completion_tokens * self.settings.price_output_per_mtok
        ) / 1_000_000
        return TokenSpend(prompt_tokens, completion_tokens, cost)

    def prompt_tokens(self, request: BatchRequest) -> int:
        return estimate_tokens(self.instructions) + estimate_tokens(self.payload(request))

    def max_answer_tokens(self, request: BatchRequest) -> int:
        units = sum(estimate_tokens(text) for _id, text in request.units)
        extra = _ANSWER_TOKENS_HEADLINE + estimate_tokens(request.title) if request.headline else 0
        return 2 * units + _ANSWER_TOKENS_PER_UNIT * len(request.units) + extra + 32

    def payload(self, request: BatchRequest) -> str:
        """The user message: the units and what helps translate them. The languages are in
        the instructions, and an empty part is left out: each batch pays for what it says."""
        work: dict[str, Any] = {"title": request.title}
        optional: dict[str, Any] = {
            "before": list(request.before),
            "after": list(request.after),
            "glossary": {
                key: value
                for key, value in (("keep", list(request.keep)), ("force", dict(request.force)))
                if value
            },
            "examples": [{"source": s, "translation": t} for s, t in request.examples],
        }
        work.update((key, value) for key, value in optional.items() if value)
        if request.headline:
            work["headline"] = True
        work["units"] = [{"id": uid, "text": text} for uid, text in request.units]
        return json.dumps(work, ensure_ascii=False, separators=(",", ":"))

    def ask(self, request: BatchRequest) -> BatchAnswer:
        """One chat completion; TranslateError when the service did not answer."""
        from aggregator.translation.engines import call_with_deadline

        messages = [
            {"role": "system", "content": self.instructions},
            {"role": "user", "content": self.payload(request)},
        ]

        client = self._openai()  # importing openai takes seconds: not on the deadline

        def work() -> Any:
            return self._complete(client, messages, self.max_answer_tokens(request))

        # The client's timeout bounds each read; this bounds the whole call.
        completion, _record = call_with_deadline(self.name, self.timeout + 5, work)
        return self._read(request, completion)

    def _complete(self, client: Any, messages: list[dict[str, str]], max_tokens: int) -> Any:
        import openai

        model, base_url = self.settings.model, self.settings.base_url
        try:
            return client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=self.settings.temperature,
                max_tokens=max_tokens,
                stream=False,
                response_format={"type": "json_object"},
            )
        except openai.APITimeoutError:
            raise TranslateError(f"{self.name}: no answer within {self.timeout:g} s") from None
        except openai.APIConnectionError:
            raise TranslateError(
                f"{self.name}: cannot connect to {base_url} ({self.table}.base_url)"
            ) from None
        except openai.RateLimitError as exc:
            wait = rate_limit_wait(exc.response.headers)
            raise TranslateError(
                f"{self.name}: too many requests (HTTP 429); paused for {wait:g} s",
                retry_after=wait,
            ) from None
        except openai.AuthenticationError:
            raise TranslateError(
                f"{self.name}: the service refused the API key ({self.table}.api_key "
                f"or AGGREGATOR_{self.name.upper()}_API_KEY)"
            ) from None
        except openai.NotFoundError:
            raise TranslateError(
                f"{self.name}: the service has no model {model!r} at {base_url} "
                f"({self.table}.model, {self.table}.base_url)"
            ) from None
        except openai.APIStatusError as exc:
            raise TranslateError(
                f"{self.name}: the service answered HTTP {exc.status_code}"
            ) from None

    def _read(self, request: BatchRequest, completion: Any) -> BatchAnswer:
        usage = getattr(completion, "usage", None)
        choices = getattr(completion, "choices", None) or []
        content = (choices[0].message.content if choices else None) or ""
        answer = parse_answer(request, content)
        answer.prompt_tokens = getattr(usage, "prompt_tokens", None) or self.prompt_tokens(request)
        answer.completion_tokens = getattr(usage, "completion_tokens", None) or estimate_tokens(
            content
        )
        if choices and choices[0].finish_reason == "length":
            answer.texts, answer.cut = {}, True
            answer.problem = "the answer was cut short (finish_reason = length)"
        return answer

    def translate(self, text: str) -> str:
        """Plain text, line for line, as the other engines: each line one unit."""
        lines = text.split("\n")
        request = BatchRequest(units=[(f"u{i + 1}", line) for i, line in enumerate(lines)])
        answer = self.ask(request)
        wrong = answer.problem or next(iter(answer.problems.values()), None)
        if wrong:
            raise TranslateError(f"{self.name}: {wrong}")
        return "\n".join(answer.texts[uid] for uid, _text in request.units)


def parse_answer(request: BatchRequest, content: str) -> BatchAnswer:
    """The answer's units by id; every id missing, duplicated or added is a problem."""
    answer = BatchAnswer(texts={}, problems={})
    body = content.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    if not body.startswith("{"):
        answer.problem = (
            "text around the JSON answer" if "{" in body else "the answer is not a JSON object"
        )
        return answer
    try:
        decoded, end = json.JSONDecoder().raw_decode(body)
    except ValueError:
        answer.problem = "the answer is not valid JSON"
        return answer
    if body[end:].strip():
        answer.problem = "text around the JSON answer"
        return answer
    items = decoded.get("units") if isinstance(decoded, dict) else None
    if not isinstance(items, list):
        answer.problem = 'the answer has no "units" list'
        return answer
    headline = decoded.get("headline")
    if request.headline and isinstance(headline, str) and headline.strip():
        answer.headline = headline.strip()
    sources = dict(request.units)
    seen: dict[str, int] = {}
    for item in items:
        uid = item.get("id") if isinstance(item, dict) else None
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(uid, str) or uid not in sources or not isinstance(text, str):
            continue  # an added id: its text belongs to none of ours
        seen[uid] = seen.get(uid, 0) + 1
        answer.texts[uid] = text
    order = [uid for uid, _text in request.units]
    for position, uid in enumerate(order):
        if seen.get(uid, 0) > 1:
            answer.problems[uid] = "it came back twice"
        elif uid not in seen:
            answer.problems[uid] = "it did not come back"
            # A missing unit was most often merged into a neighbour: neither can be trusted.
            for neighbour in order[max(0, position - 1) : position + 2]:
                answer.problems.setdefault(neighbour, "its neighbour did not come back")
        elif _CHATTER.match(answer.texts[uid]) and not _CHATTER.match(sources[uid]):
            answer.problems[uid] = "a comment came back with it"
    for uid in answer.problems:
        answer.texts.pop(uid, None)
    return answer


def rate_limit_wait(headers: Mapping[str, str]) -> float:
    """Seconds to wait after a 429: retry-after, else the resets of the spent limits."""
    from aggregator.polling.fetch import parse_retry_after

    retry_after = parse_retry_after(headers.get("retry-after"))
    if retry_after is not None:
        return retry_after
    resets = [
        _reset_seconds(headers.get(f"x-ratelimit-reset-{kind}", ""))
        for kind in ("requests", "tokens")
        if headers.get(f"x-ratelimit-remaining-{kind}", "0") == "0"
    ]
    waits = [wait for wait in resets if wait is not None]
    return max(waits) if waits else DEFAULT_RETRY_AFTER


def _reset_seconds(value: str) -> float | None:
    """OpenAI's reset durations: "1s", "6m0s", "1h2m3.5s", "120ms"."""
    parts = _RESET.findall(value.strip())
    if not parts:
        return None
    return sum(float(number) * _RESET_SECONDS[unit] for number, unit in parts)


# ---------------------------------------------------------------- one article's units


Check = Callable[[int, str], "str | None"]  # (index of the text, its translation) -> problem


@dataclass(frozen=True)
class Article:
    """What the model sees besides the units: the title, the units around, the house style."""

    title: str
    texts: Sequence[str]  # every unit of the article, in order
    positions: Sequence[int]  # where each text to translate sits in ``texts``
    examples: Sequence[tuple[str, str]] = ()
    keep: Sequence[str] = ()
    force: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    translations: dict[int, str]
    headline: str | None = None
    failure: TranslateError | None = None


def translate_texts(
    engine: LLMEngine,
    ask: Callable[[BatchRequest], BatchAnswer],
    texts: Sequence[str],
    article: Article,
    check: Check,
) -> Outcome:
    """Translate ``texts`` in batches through ``ask`` (the guarded engine), repairing what
    comes back wrong; what cannot be repaired is left out, named in ``failure``."""
    outcome = Outcome(translations={})
    given_up: dict[int, str] = {}

    def request(indices: list[int]) -> BatchRequest:
        first, last = article.positions[indices[0]], article.positions[indices[-1]]
        width = engine.settings.context_units
        return BatchRequest(
            units=[(f"u{i + 1}", texts[i]) for i in indices],
            title=article.title,
            before=list(article.texts[max(0, first - width) : first]),
            after=list(article.texts[last + 1 : last + 1 + width]),
            examples=article.examples,
            keep=article.keep,
            force=article.force,
            headline=engine.adapts_headline and outcome.headline is None,
        )

    def solve(indices: list[int], attempt: int) -> None:
        try:
            answer = ask(request(indices))
        except BudgetExhaustedError:
            if len(indices) == 1:
                raise
            # What is left of the day's budget may still hold a smaller batch.
            half = len(indices) // 2
            solve(indices[:half], attempt)
            solve(indices[half:], attempt)
            return
        outcome.headline = outcome.headline or answer.headline
        failed: dict[int, str] = {}
        for i in indices:
            uid = f"u{i + 1}"
            problem = answer.problem or answer.problems.get(uid)
            if problem is None:
                problem = check(i, answer.texts[uid])
            if problem is None:
                outcome.translations[i] = answer.texts[uid]
            else:
                failed[i] = problem
        remaining = list(failed)
        if not remaining:
            return
        if attempt + 1 >= MAX_ATTEMPTS:
            given_up.update(failed)
        elif len(remaining) == 1 or (attempt == 0 and not answer.cut):
            solve(remaining, attempt + 1)
        else:
            half = len(remaining) // 2
            solve(remaining[:half], attempt + 1)
            solve(remaining[half:], attempt + 1)

    try:
        for batch in _batches(texts, engine.settings.batch_tokens):
            solve(batch, 0)
    except TranslateError as exc:
        outcome.failure = exc
        return outcome
    if given_up:
        named = "; ".join(f"«{_excerpt(texts[i])}»: {why}" for i, why in list(given_up.items())[:3])
        outcome.failure = TranslateError(
            f"{engine.name}: {len(given_up)} unit(s) still wrong after {MAX_ATTEMPTS} requests "
            f"({named})"
        )
    return outcome


def _batches(texts: Sequence[str], limit: int) -> list[list[int]]:
    """Consecutive indices whose estimated tokens fit in ``limit`` (a longer unit alone)."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, text in enumerate(texts):
        size = estimate_tokens(text)
        if current and used + size > limit:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += size
    if current:
        batches.append(current)
    return batches


def _excerpt(text: str) -> str:
    return text if len(text) <= 40 else text[:37].rstrip() + "…"


# ---------------------------------------------------------------- configuration


def build_llm_engine(settings: TranslationSettings, name: str = "llm") -> LLMEngine:
    llm: LLMSettings = settings.llm_settings(name)
    table = settings.llm_table(name)
    languages = settings.source_languages or ("en",)
    source = languages[0] if len(languages) == 1 else "auto"
    return LLMEngine(
        llm,
        instructions(llm.prompt_file, source, settings.target_language, table, llm.style),
        source=source,
        target=settings.target_language,
        timeout=float(llm.timeout or settings.timeout),
        name=name,
        table=table,
    )


def instructions(
    prompt_file: str, source: str, target: str, table: str = "translation.llm", style: str = ""
) -> str:
    """The prompt template (``prompt_file``, else the one shipped), languages filled in,
    then the publication's own ``style`` rules, which win over the template's."""
    if prompt_file:
        try:
            template = Path(prompt_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{table}.prompt_file: cannot read {prompt_file}: {exc}") from None
    else:
        shipped = resources.files("aggregator.translation") / "prompts" / f"{PROMPT_VERSION}.md"
        template = shipped.read_text(encoding="utf-8")
    prompt = string.Template(template).safe_substitute(
        source_language=_language_name(source), target_language=_language_name(target)
    )
    if style.strip():
        prompt = f"{prompt.rstrip()}\n\n{STYLE_HEADING}\n\n{style.strip()}\n"
    return prompt


def _language_name(code: str) -> str:
    if code == "auto":
        return "the article's language"
    try:
        return Locale.parse(code).get_display_name("en") or code
    except (ValueError, UnknownLocaleError):
        return code
