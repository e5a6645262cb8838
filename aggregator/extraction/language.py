"""Which language is this text in? Per entry and per block; pure, offline, deterministic.

An entry is classified among every language the model knows (a German post must not pass for
English). A block is classified only among the languages that matter for it, the source
languages and the target: a heading such as "Breaking Down Barriers" is too short for a
97-way guess but not for "English or French?".
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

# Below this many letters the guess is noise; such blocks follow the entry's language.
MIN_LETTERS = 20
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


# lru_cache does not stop several threads from computing the same value at once: without
# the lock, the entries in flight each load their own 100 MB copy of the model.
_LOADING = threading.Lock()


def _identifier() -> LanguageIdentifier:
    with _LOADING:
        return _full_model()


@lru_cache(maxsize=1)
def _full_model() -> LanguageIdentifier:
    # numpy and the model load on first use, not when a command that never asks starts.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier: LanguageIdentifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return identifier


def _restricted(languages: tuple[str, ...]) -> LanguageIdentifier:
    with _LOADING:
        return _restricted_model(languages)


@lru_cache(maxsize=16)
def _restricted_model(languages: tuple[str, ...]) -> LanguageIdentifier:
    # set_languages replaces the model arrays instead of changing them, so a shallow copy
    # shares the loaded model and keeps the full one intact.
    identifier = copy.copy(_full_model())
    identifier.set_languages(list(languages))
    return identifier


def letters(text: str) -> int:
    return len(_LETTER.findall(text))


def detect(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when there is too little text."""
    if letters(text) < MIN_LETTERS:
        return None
    language, _probability = _identifier().classify(text)
    return str(language)


def detect_among(text: str, languages: Iterable[str]) -> str | None:
    """The most likely of ``languages`` for this text, or None when there is too little."""
    candidates = tuple(sorted(set(languages)))
    if letters(text) < MIN_LETTERS or not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    language, _probability = _restricted(candidates).classify(text)
    return str(language)


# Text in these languages nearly always shows one of these marks within a sentence: accents
# or the commonest function words. A block without any cannot be in that language, and the
# classifier (the costliest step of a block's journey) need not run for it.
_MARKS = {
    "fr": re.compile(
        r"[àâçéèêëîïôûùüÿœæ]|\b(?:le|la|les|des|du|une|est|et|que|qui|dans|pour|pas|sur|avec"
        r"|au|aux|ce|cette|il|elle|nous|vous|sont|mais|ou|où)\b",
        re.I,
    ),
}


def might_be(text: str, language: str) -> bool:
    """False only when the text surely is not in ``language`` (a cheap test first)."""
    marks = _MARKS.get(language)
    return marks is None or marks.search(text) is not None


def is_language(text: str, languages: tuple[str, ...] | list[str]) -> bool:
    detected = detect(text)
    return detected is not None and detected in languages
