"""What a translation goes from and to (the memory of translated units is kept per pair), and
where each target language is published."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LanguagePair:
    source: str  # ISO 639-1, as detected ("en")
    target: str  # as configured ([translation] target_language)


def language_prefix(language: str, main_language: str) -> str:
    """Where the public resources in ``language`` live: the root for the main language
    ([translation] target_language, so existing subscribers keep their URLs), ``/es`` and so
    on for the others."""
    return "" if language == main_language else f"/{language}"


def article_path(draft_id: int, language: str, main_language: str) -> str:
    """The public page of a published draft, under its language's prefix."""
    return f"{language_prefix(language, main_language)}/articles/{draft_id}"


def usage_account(engine: str, language: str = "") -> str:
    """What an engine's use into ``language`` is counted and budgeted under: the engine's
    name into [translation] target_language (``language`` empty), "libre:es" into another:
    each language pair has its own daily budget."""
    return f"{engine}:{language}" if language else engine
