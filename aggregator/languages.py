"""What a translation goes from and to: the memory of translated units is kept per pair."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LanguagePair:
    source: str  # ISO 639-1, as detected ("en")
    target: str  # as configured ([translation] target_language)
