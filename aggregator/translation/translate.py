"""Translate one article: units, language, memory, batches, engines, checks.

    units (segment.py) ─► keep what needs no engine: no words, already in the target
    language, code ─► recall the rest from memory ─► batch what is left, the title first,
    one unit per line, as many per request as the engine's limits allow ─► restore markup
    ─► remember ─► check the structure ─► Translation, or TranslateError

A unit whose inline markup did not come back is retried alone. If the engine loses it
again, the unit is translated piece by piece between its markup, which never leaves this
process, and the draft carries a warning for the editor naming the block: the links and
emphasis are all there, in their places, but the wording deserves a look. Nothing is ever
flattened to plain text; when even that fails, the article fails.

LLM engines (llm.py) take the units themselves instead of lines, in batches with the title,
the units around, the glossary and the editor's examples; each answer is checked here (its
markup, its length, its language) and what fails is asked again, then falls to the next
engine of the chain. What the memory recalled is never sent to any engine.

A draft is complete or it does not exist: every unit translated, and the counts of
headings, paragraphs, list items, links, images, quotes and tables as in the source, code
byte for byte the same.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, TypeVar

from aggregator.clock import utc_now
from aggregator.errors import TranslateError
from aggregator.extraction.extract import sanitize
from aggregator.extraction.language import MIN_LETTERS, detect_among, letters, might_be
from aggregator.languages import LanguagePair
from aggregator.translation.batches import pack
from aggregator.translation.chain import EngineChain, GuardedEngine, exhausted
from aggregator.translation.engines import Engine
from aggregator.translation.glossary import Glossary
from aggregator.translation.llm import Article, LLMEngine, translate_texts
from aggregator.translation.segment import (
    BLOCK_TAGS,
    CONTAINER_TAGS,
    COUNTED,
    PLACEHOLDER,
    Unit,
    leaf_blocks,
    normalise,
    parse_fragment,
    protect,
    replace_content,
    restore,
    serialize,
    structure_counts,
    text_of_inner,
    text_runs,
    title_unit,
    units,
    verbatim_parts,
)
from aggregator.translation.typography import typeset

__all__ = [
    "BLOCK_TAGS",
    "CONTAINER_TAGS",
    "Memory",
    "Translation",
    "corrections",
    "leaf_blocks",
    "pack",
    "parse_fragment",
    "translate_article",
]

_SENTENCE_END = re.compile(r"(?<=[.!?…:;])\s+")
_SPACE = re.compile(r"\s+")


class Remembered(Protocol):
    @property
    def translation(self) -> str: ...
    @property
    def engine(self) -> str: ...


class Memory(Protocol):
    """Where translated units are kept (``store.MemoryStore``)."""

    def recall(
        self, sources: Collection[str], *, pair: LanguagePair, engines: Sequence[str], now: datetime
    ) -> Mapping[str, Remembered]: ...

    def remember(
        self, translations: Iterable[tuple[str, str, str]], *, pair: LanguagePair, now: datetime
    ) -> None: ...


@dataclass(frozen=True)
class Translation:
    title: str
    body_html: str
    engine: str
    characters: int
    requests: int
    warnings: tuple[str, ...] = ()
    units: int = 0  # title included
    from_memory: int = 0
    kept: int = 0  # already in the target language, or nothing to translate
    headline: str = ""  # an LLM's headline for French readers, when asked for one
    prompt_tokens: int = 0  # LLM engines' tokens, as their services counted them
    completion_tokens: int = 0
    cost: float | None = None  # those tokens at the engines' prices; None: none is priced


# ---------------------------------------------------------------- sending

SENTENCE_WORDS = 6  # fewer words may be a name or a label, which engines rightly keep


def _renumbered(
    check: Callable[[int, str], str | None], indices: Sequence[int]
) -> Callable[[int, str], str | None]:
    """``check`` for a subset: the subset's k-th text is ``indices[k]``."""
    return lambda k, answer: check(indices[k], answer)


def _plausible(sources: Sequence[str], answers: Sequence[str]) -> bool:
    """Did each line come back as a translation of the same line? (shifted lines do not)"""
    for source, answer in zip(sources, answers, strict=True):
        if source.strip() and not answer.strip():
            return False
        if len(source) >= 40 and not 0.25 <= len(answer) / len(source) <= 4:
            return False
    return True


class _Sender:
    """Sends lines through the chain's engines, falling back when one fails."""

    def __init__(self, chain: EngineChain) -> None:
        self.chain = chain
        self.position = 0
        self.failures: list[TranslateError] = []
        self.headline = ""

    def units(
        self, texts: Sequence[str], article: Article, check: Callable[[int, str], str | None]
    ) -> list[tuple[str, str]]:
        """(translation, engine) of each unit's text: LLM engines take them in checked
        batches (``llm.translate_texts``), the others line by line."""
        results: dict[int, tuple[str, str]] = {}
        while len(results) < len(texts):
            guarded = self.current()
            pending = [i for i in range(len(texts)) if i not in results]
            if not isinstance(guarded.engine, LLMEngine):
                results.update(zip(pending, self.lines([texts[i] for i in pending]), strict=True))
                break
            outcome = translate_texts(
                guarded.engine,
                guarded.ask,
                [texts[i] for i in pending],
                replace(article, positions=[article.positions[i] for i in pending]),
                _renumbered(check, pending),
            )
            self.headline = self.headline or outcome.headline or ""
            for k, translated in outcome.translations.items():
                results[pending[k]] = (translated, guarded.name)
            if outcome.failure is not None:
                self.failures.append(outcome.failure)
                self.position += 1
        return [results[i] for i in range(len(texts))]

    def current(self) -> GuardedEngine:
        if self.position >= len(self.chain.engines):
            raise exhausted(self.failures)
        return self.chain.engines[self.position]

    def lines(self, lines: Sequence[str]) -> list[tuple[str, str]]:
        """(translation, engine) of each line, many lines per request."""
        results: dict[int, tuple[str, str]] = {}
        while len(results) < len(lines):
            guarded = self.current()
            pending = [i for i in range(len(lines)) if i not in results]
            plan = pack([lines[i] for i in pending], guarded.engine)
            expected = Counter(pending[k] for request in plan for k, _ in request)
            done: dict[int, list[str]] = defaultdict(list)
            try:
                for request in plan:
                    answers = self._group(guarded, [text for _, text in request])
                    for (k, _text), answer in zip(request, answers, strict=True):
                        line = pending[k]
                        done[line].append(answer)
                        if len(done[line]) == expected[line]:
                            results[line] = (" ".join(done[line]), guarded.name)
            except TranslateError as exc:
                self.failures.append(exc)
                self.position += 1
        return [results[i] for i in range(len(lines))]

    def _group(self, guarded: GuardedEngine, group: list[str]) -> list[str]:
        """One request; if lines went missing or shifted, the halves are asked again."""
        answer = guarded.translate("\n".join(group))
        if len(group) == 1:
            return [_SPACE.sub(" ", answer).strip()]
        parts = answer.split("\n")
        if len(parts) != len(group):
            parts = [part for part in parts if part.strip()]  # blank lines some engines add
        if len(parts) == len(group) and _plausible(group, parts):
            return parts
        half = len(group) // 2
        return self._group(guarded, group[:half]) + self._group(guarded, group[half:])


# ---------------------------------------------------------------- whole articles


@dataclass
class _Work:
    """One unit on its way through the translation."""

    unit: Unit
    key: str  # normalised, glossary not applied: the memory key
    key_unit: Unit
    inner: str | None = None  # restored HTML
    engine: str | None = None
    remember: str | None = None  # the engine's answer, worth keeping in memory
    is_title: bool = False


def translate_article(
    title: str,
    html: str,
    engines: Engine | EngineChain,
    *,
    target_language: str,
    source_language: str = "en",
    source_languages: Sequence[str] = ("en",),
    memory: Memory | None = None,
    glossary: Glossary | None = None,
    examples: Sequence[tuple[str, str]] = (),
    now: Callable[[], datetime] = utc_now,
) -> Translation:
    """Translate a title and a sanitized article; raise TranslateError unless complete.

    ``examples`` are (source, editor's text) pairs of the same feed, HTML or text
    (``store.feed_examples``): LLM engines see them as the house style.
    """
    chain = EngineChain.of(engines)
    pair = LanguagePair(source_language, target_language)
    spent_before = [(g.characters, g.requests) for g in chain.engines]
    tokens_before = [(g.prompt_tokens, g.completion_tokens) for g in chain.engines]
    root = parse_fragment(html)
    counts_before = structure_counts(root)
    code_before = verbatim_parts(root)
    work = [_prepare(title_unit(title, glossary), glossary)]
    work[0].is_title = True
    work += [_prepare(unit, glossary) for unit in units(root, glossary)]
    languages = (*source_languages, target_language)

    kept = 0
    needed: list[_Work] = []
    for item in work:
        plain = item.unit.plain
        if not item.unit.has_words or (
            might_be(plain, target_language) and detect_among(plain, languages) == target_language
        ):
            item.inner = restore(item.unit, item.unit.text)  # as it was
            kept += 1
        else:
            needed.append(item)

    from_memory = 0
    if memory is not None and needed:
        remembered = memory.recall(
            {item.key for item in needed}, pair=pair, engines=chain.names, now=now()
        )
        for item in needed:
            hit = remembered.get(item.key)
            if hit is not None and _restore_remembered(item, hit.translation):
                item.engine = hit.engine
                from_memory += 1

    sender = _Sender(chain)
    warnings: list[str] = []
    article = Article(
        title=title,
        texts=[item.key_unit.plain for item in work],  # the glossary's terms left in
        positions=(),
        examples=[(text_of_inner(source), text_of_inner(edited)) for source, edited in examples],
        keep=glossary.keep if glossary else (),
        force=dict(glossary.force) if glossary else {},
    )
    try:
        _translate_missing(
            work, [i for i in needed if i.inner is None], sender, languages, warnings, article
        )
    finally:
        if memory is not None:
            memory.remember(
                [(i.engine or "", i.key, i.remember) for i in needed if i.remember],
                pair=pair,
                now=now(),
            )

    for item in work[1:]:
        assert item.inner is not None
        if _machine_made(item):
            item.inner = typeset(item.inner, target_language, markup=True)
        replace_content(item.unit.element, item.inner)
    body = sanitize(serialize(root))
    new_title = text_of_inner(work[0].inner or "")
    if _machine_made(work[0]):
        new_title = typeset(new_title, target_language)
    if title.strip() and not new_title:
        raise TranslateError("the title came back empty")
    _check_integrity(counts_before, code_before, body)

    spent = list(zip(chain.engines, spent_before, strict=True))
    characters = sum(g.characters - c for g, (c, _r) in spent)
    requests = sum(g.requests - r for g, (_c, r) in spent)
    tokens = list(zip(chain.engines, tokens_before, strict=True))
    headline = _headline(sender.headline, title, glossary, target_language, warnings)
    engines_used = Counter(i.engine for i in needed if i.engine and i.engine != "editor")
    engine = engines_used.most_common(1)[0][0] if engines_used else chain.names[0]
    return Translation(
        title=new_title,
        body_html=body,
        engine=engine,
        characters=characters,
        requests=requests,
        warnings=tuple(warnings),
        units=len(work),
        from_memory=from_memory,
        kept=kept,
        headline=headline,
        prompt_tokens=sum(g.prompt_tokens - p for g, (p, _c) in tokens),
        completion_tokens=sum(g.completion_tokens - c for g, (_p, c) in tokens),
        cost=_cost(tokens),
    )


def _cost(spent: Sequence[tuple[GuardedEngine, tuple[int, int]]]) -> float | None:
    """What the tokens sent since ``spent``'s counts cost at the engines' prices."""
    costs = [
        guarded.engine.spend(guarded.prompt_tokens - p, guarded.completion_tokens - c).cost
        for guarded, (p, c) in spent
        if isinstance(guarded.engine, LLMEngine) and guarded.engine.priced
    ]
    return sum(costs) if costs else None


def _headline(
    proposed: str, title: str, glossary: Glossary | None, language: str, warnings: list[str]
) -> str:
    """The engine's headline, if it says the glossary's terms of the title as it wants."""
    if not proposed:
        return ""
    terms = glossary.pattern if glossary else None
    for match in terms.finditer(title) if glossary and terms else ():
        wanted = glossary.replacement(match) if glossary else ""
        if wanted.casefold() not in proposed.casefold():
            warnings.append(f"the proposed headline was left out: it lacks «{wanted}»")
            return ""
    return typeset(proposed, language)


def _machine_made(item: _Work) -> bool:
    """Engines write English punctuation; an editor's correction stays as it was written."""
    return item.engine not in (None, "editor")


def _prepare(unit: Unit, glossary: Glossary | None) -> _Work:
    key_unit = protect(unit.element, None) if glossary and glossary.pattern else unit
    return _Work(unit=unit, key=normalise(key_unit.text), key_unit=key_unit)


def _restore_remembered(item: _Work, translation: str) -> bool:
    # An editor's correction is kept without glossary placeholders: try both forms.
    for unit in (item.unit, item.key_unit):
        try:
            item.inner = restore(unit, translation)
        except TranslateError:
            continue
        return True
    return False


def _translate_missing(
    work: list[_Work],
    items: list[_Work],
    sender: _Sender,
    languages: Sequence[str],
    warnings: list[str],
    article: Article,
) -> None:
    by_text: dict[str, list[_Work]] = defaultdict(list)
    for item in items:
        by_text[item.unit.text].append(item)  # the same unit twice is paid once
    texts = list(by_text)
    position = {id(item): n for n, item in enumerate(work)}
    insisted: set[int] = set()

    def check(index: int, answer: str) -> str | None:
        """What is wrong with an LLM's answer for a unit (the other engines are trusted
        more: their answers are retried or warned about below)."""
        group = by_text[texts[index]]
        try:
            for item in group:
                restore(item.unit, answer)
        except TranslateError as exc:
            return str(exc)
        if not _plausible([texts[index]], [answer]):
            return "its length is not that of a translation of it"
        if _in_source_language(group[0].unit, answer, languages):
            return "it came back untranslated"
        # A few words back as they went may be a name: asked once more, then believed.
        if normalise(answer) == normalise(texts[index]) and index not in insisted:
            insisted.add(index)
            return "it came back untranslated"
        return None

    article = replace(article, positions=[position[id(by_text[t][0])] for t in texts])
    answers = sender.units(texts, article, check)
    lost: list[str] = []
    for text, (answer, engine) in zip(texts, answers, strict=True):
        if not _accept(by_text[text], answer, engine, languages, warnings):
            lost.append(text)
    for text in lost:
        # Retried alone: in a batch, engines move markup between neighbouring lines.
        answer, engine = sender.lines([text])[0]
        if not _accept(by_text[text], answer, engine, languages, warnings):
            _translate_between_markup(by_text[text], sender, warnings)


def _accept(
    items: list[_Work], answer: str, engine: str, languages: Sequence[str], warnings: list[str]
) -> bool:
    unit = items[0].unit
    try:
        # Units with the same text may differ in what wraps them: each restores its own.
        inners = [restore(item.unit, answer) for item in items]
    except TranslateError:
        return False
    answer = normalise(answer)
    # Names, numbers and short labels may well come back as they went; a sentence in the
    # source language may not: the editor is told, and it is not remembered.
    untranslated = (
        answer == normalise(unit.text)
        and sum(letters(word) >= 2 for word in unit.plain.split()) >= SENTENCE_WORDS
        and letters(unit.plain) >= MIN_LETTERS
        and detect_among(unit.plain, languages) in languages[:-1]
    )
    if untranslated:
        warnings.append(f"{_label(items[0])}: the engine returned it untranslated")
    for item, inner in zip(items, inners, strict=True):
        item.inner, item.engine = inner, engine
        item.remember = None if untranslated else answer
    return True


def _in_source_language(unit: Unit, answer: str, languages: Sequence[str]) -> bool:
    """A sentence whose translation still reads as a source language (names and short
    labels may rightly come back as they went)."""
    plain = PLACEHOLDER.sub(" ", answer)
    return (
        sum(letters(word) >= 2 for word in unit.plain.split()) >= SENTENCE_WORDS
        and letters(plain) >= MIN_LETTERS
        and detect_among(plain, languages) in languages[:-1]
    )


def _translate_between_markup(items: list[_Work], sender: _Sender, warnings: list[str]) -> None:
    """The unit's text pieces translated on their own, its markup put back between them."""
    unit = items[0].unit
    parts = text_runs(unit.text)
    slots = [i for i, part in enumerate(parts) if i % 2 == 0 and _has_letters(part)]
    answers = sender.lines([parts[i].strip() for i in slots]) if slots else []
    for i, (answer, _engine) in zip(slots, answers, strict=True):
        original = parts[i]
        lead = " " if original[:1].isspace() else ""
        trail = " " if original[-1:].isspace() else ""
        parts[i] = lead + PLACEHOLDER.sub(" ", answer).strip() + trail
    engine = answers[0][1] if answers else None
    for item in items:
        item.inner, item.engine = restore(item.unit, "".join(parts)), engine
    warnings.append(
        f"{_label(items[0])}: the engine lost its links or emphasis twice, so its pieces were "
        "translated separately and the markup put back around them; check the wording"
    )


def _has_letters(text: str) -> bool:
    return letters(text) > 0


def _label(item: _Work) -> str:
    """How a warning names the block: its kind and its first words."""
    tag = item.unit.element.tag
    plain = item.unit.plain
    excerpt = plain if len(plain) <= 60 else plain[:57].rstrip() + "…"
    kind = "title" if item.is_title else "text" if tag == "x-run" else f"<{tag}>"
    return f"{kind} «{excerpt}»"


def _check_integrity(counts_before: dict[str, int], code_before: list[str], body: str) -> None:
    root = parse_fragment(body)
    counts_after = structure_counts(root)
    if counts_after != counts_before:
        changed = ", ".join(
            f"{k} {counts_before[k]}→{counts_after[k]}"
            for k in COUNTED
            if counts_before[k] != counts_after[k]
        )
        raise TranslateError(f"the translation changed the article's structure ({changed})")
    if verbatim_parts(root) != code_before:
        raise TranslateError("the translation changed code or preformatted text")


# ---------------------------------------------------------------- editors' corrections


def corrections(source_html: str, machine_html: str, edited_html: str) -> list[tuple[str, str]]:
    """(source text, editor's text) for every block an editor changed, in memory form.

    Blocks pair up by position, since translation keeps the structure. A block is left out
    when the editor's version no longer has the source's links, emphasis and code (it could
    not be put back into the same block of another article), or when the three versions do
    not have the same blocks at all.
    """
    sources = units(parse_fragment(source_html))
    machine = units(parse_fragment(machine_html))
    edited = units(parse_fragment(edited_html))
    if not len(sources) == len(machine) == len(edited):
        return []
    found = []
    for source, before, after in zip(sources, machine, edited, strict=True):
        if normalise(after.text) == normalise(before.text) or not after.has_words:
            continue
        aligned = _in_source_placeholders(source, after)
        if aligned is not None:
            found.append((normalise(source.text), normalise(aligned)))
    return found


_M = TypeVar("_M")


def _in_source_placeholders(source: Unit, edited: Unit) -> str | None:
    """The edited text with its placeholders renumbered as the source's, or None."""
    mapping: dict[int, int] = {}
    if not (
        _pair_up(edited.tags, source.tags, mapping)
        and _pair_up(edited.opaque, source.opaque, mapping)
    ):
        return None
    return PLACEHOLDER.sub(lambda m: f"[[{m.group(1)}{mapping[int(m.group(2))]}]]", edited.text)


def _pair_up(edited: Mapping[int, _M], source: Mapping[int, _M], mapping: dict[int, int]) -> bool:
    """Number each edited placeholder as the source's one holding the same markup, into
    ``mapping``; False unless every placeholder on each side finds its own."""
    free = dict(source)
    for n, markup in edited.items():
        match = next((m for m, held in free.items() if held == markup), None)
        if match is None:
            return False
        mapping[n] = match
        del free[match]
    return not free
