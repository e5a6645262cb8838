"""Which entries of a feed are translated at all: ``include`` and ``exclude`` rules. Pure.

A rule is ``"FIELD:PATTERN"`` or ``"PATTERN"``: a regular expression (a word is one too)
searched, ignoring case, in the entry's title, author, categories or text; without a field
it is searched in all of them. An entry that matches an ``exclude`` rule, or no ``include``
rule when there are some, is skipped with the rule that decided, before its page is read or
anything is sent to an engine (as Miniflux's block and keep rules).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

FIELDS = ("title", "author", "category", "text")


class RuleError(ValueError):
    """A rule whose field is unknown or whose pattern is not a regular expression."""


@dataclass(frozen=True)
class Rule:
    written: str  # as in config.toml, for the reason an editor reads
    fields: tuple[str, ...]
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, written: str) -> Rule:
        field, colon, pattern = written.partition(":")
        if colon and field.strip().lower() in FIELDS:
            fields: tuple[str, ...] = (field.strip().lower(),)
        else:
            fields, pattern = FIELDS, written
        if not pattern.strip():
            raise RuleError(f"{written!r} has no pattern to look for")
        try:
            compiled = re.compile(pattern.strip(), re.IGNORECASE)
        except re.error as exc:
            raise RuleError(f"{pattern.strip()!r} is not a regular expression: {exc}") from None
        return cls(written, fields, compiled)

    def matches(self, entry: EntryFacts) -> bool:
        return any(self.pattern.search(value) for value in entry.values(self.fields))


@dataclass(frozen=True)
class EntryFacts:
    """What the rules look at; ``text`` is None until the article has been read."""

    title: str
    author: str = ""
    categories: tuple[str, ...] = ()
    text: str | None = None

    def values(self, fields: Sequence[str]) -> list[str]:
        found: list[str] = []
        for field in fields:
            if field == "title":
                found.append(self.title)
            elif field == "author":
                found.append(self.author)
            elif field == "category":
                found.extend(self.categories)
            elif self.text is not None:
                found.append(self.text)
        return found


@dataclass(frozen=True)
class FeedRules:
    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, include: Sequence[str], exclude: Sequence[str]) -> FeedRules:
        return cls(tuple(map(Rule.parse, include)), tuple(map(Rule.parse, exclude)))

    @property
    def need_text(self) -> bool:
        """Does any rule look at the article's text (so it is decided again once read)?"""
        return any("text" in rule.fields for rule in (*self.include, *self.exclude))

    def refusal(self, entry: EntryFacts) -> str | None:
        """Why the entry is not translated, naming the rule; None when it is.

        Before the article is read (``entry.text`` None), only what can already be decided
        is: an ``exclude`` that matches, or no ``include`` that could still match.
        """
        for rule in self.exclude:
            if rule.matches(entry):
                return f"excluded by the feed's rule exclude = {rule.written!r}"
        if not self.include or any(rule.matches(entry) for rule in self.include):
            return None
        if entry.text is None and self.need_text:
            return None  # a text rule may still let it in once the article is read
        rules = ", ".join(repr(rule.written) for rule in self.include)
        return f"excluded: matches none of the feed's rules include = [{rules}]"
