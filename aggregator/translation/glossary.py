"""The glossary of config.toml: terms kept as written, and terms always translated one way.

Both kinds leave the engine's hands: during segmentation each occurrence becomes an opaque
placeholder, so the engine translates the sentence around it and the term comes back exactly
as the glossary says, whatever the engine would have made of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aggregator.config import GlossarySettings


@dataclass(frozen=True)
class Glossary:
    keep: tuple[str, ...] = ()
    force: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: GlossarySettings) -> Glossary:
        return cls(keep=settings.keep, force=tuple(settings.force.items()))

    @property
    def pattern(self) -> re.Pattern[str] | None:
        return _compile(self.keep, self.force)

    def replacement(self, match: re.Match[str]) -> str:
        """What an occurrence found by ``pattern`` becomes in the translation."""
        term = match.group()
        if match.lastgroup == "keep":
            return term
        forced = dict((k.casefold(), v) for k, v in self.force)
        french = forced[term.casefold()]
        if term[:1].isupper() and french[:1].islower():
            return french[:1].upper() + french[1:]
        return french


def _alternatives(terms: list[str]) -> str:
    # Longest first, so "Sam Altman" wins over "Sam"; word edges that also work for "C++".
    ordered = sorted(terms, key=len, reverse=True)
    return "|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in ordered)


_cache: dict[tuple[object, ...], re.Pattern[str] | None] = {}


def _compile(keep: tuple[str, ...], force: tuple[tuple[str, str], ...]) -> re.Pattern[str] | None:
    key = (keep, force)
    if key not in _cache:
        parts = []
        if keep:
            parts.append(f"(?P<keep>{_alternatives(list(keep))})")
        if force:
            parts.append(f"(?P<force>(?i:{_alternatives([k for k, _ in force])}))")
        _cache[key] = re.compile("|".join(parts)) if parts else None
    return _cache[key]
