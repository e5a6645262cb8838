"""Which language is this text in? Per entry and per block; pure, offline, deterministic."""

from __future__ import annotations

import re
from functools import lru_cache

import py3langid
from py3langid.langid import LanguageIdentifier

# Below this many letters the guess is noise; such blocks follow the entry's language.
MIN_LETTERS = 20
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    identifier: LanguageIdentifier = LanguageIdentifier.from_model_file(
        py3langid.langid.MODEL_FILE, norm_probs=True
    )
    return identifier


def detect(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when there is too little text."""
    if len(_LETTER.findall(text)) < MIN_LETTERS:
        return None
    language, _probability = _identifier().classify(text)
    return str(language)


def is_language(text: str, languages: tuple[str, ...] | list[str]) -> bool:
    detected = detect(text)
    return detected is not None and detected in languages
