"""The language an editor reads: Babel catalogues, plurals, dates and durations.

Every message of the desk, the public pages and the editor's CLI output is an English msgid
(in the templates through Jinja's i18n extension, in code through ``Messages``);
``locale/<lang>/LC_MESSAGES/aggregator.po`` gives a language its text, compiled to the
``.mo`` beside it that the wheel carries. Another language's desk is one more catalogue.

What the pipeline and the store write (warnings, the audit trail's details) stays English in
the database and the JSON output, which scripts read; ``Messages.stored`` translates the
sentences it recognises at display time and shows any other one as it was written.

Imports only Babel and the standard library: any module may use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from aggregator.msgid import N_ as N_  # re-exported: i18n is where messages live

DOMAIN = "aggregator"
LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"  # the msgids' language: no catalogue needed
# Babel's French dates and durations put no-break spaces where the desk's own texts (and
# the tests reading them) use plain ones: one convention on a page.
WHEN_PATTERN = "yyyy-MM-dd HH:mm"  # CLDR pattern
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


# Catalogues of the public pages alone (a target language's home and article pages): the
# desk and the CLI are not offered in them.
PUBLIC_ONLY = frozenset({"es"})


def available_languages(*, public: bool = False) -> tuple[str, ...]:
    """English, and every language with a compiled catalogue of the desk (``public``: of
    the public pages too)."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (
        SOURCE_LANGUAGE,
        *(
            lang
            for lang in found
            if lang != SOURCE_LANGUAGE and (public or lang not in PUBLIC_ONLY)
        ),
    )


def ui_language(chosen: str, target_language: str, *, public: bool = False) -> str:
    """``[review] language`` when set, else the translation's target language when a
    catalogue exists for it (``public``: for the public pages), else English."""
    if chosen:
        return chosen
    known = available_languages(public=public)
    return target_language if target_language in known else SOURCE_LANGUAGE


@cache
def messages(language: str) -> Messages:
    """The messages of one language (English for a language with no catalogue)."""
    translations: NullTranslations
    known = available_languages(public=True)
    if language == SOURCE_LANGUAGE or language not in known:
        translations = NullTranslations()
        language = language if language in known else SOURCE_LANGUAGE
    else:
        translations = Translations.load(str(LOCALE_DIR), [language], DOMAIN)
    return Messages(language, translations)


# Sentences the pipeline and the store write in English (warnings, audit details), each a
# msgid whose placeholders match anything: the catalogue's text is shown in their place.
STORED = (
    N_("recurring block left out (it comes back in this feed's entries): «%(excerpt)s»"),
    N_("%(block)s: the engine returned it untranslated"),
    N_(
        "%(block)s: the engine lost its links or emphasis twice, so its pieces were translated "
        "separately and the markup put back around them; check the wording"
    ),
    N_("the original article changed after review"),
    N_(
        "%(parts)s: edited by hand, and its original changed since: the edit is kept; compare "
        "it with the new original"
    ),
    N_("approved with the edits kept over a changed original: %(parts)s"),
    N_("taken out of the feeds (published since %(moment)s UTC); %(path)s answers 410 Gone"),
    N_("the changed original is taken again"),
    N_("the change of the original was reviewed; the translation stays"),
    N_("%(parts)s; kept against the changed original: %(kept)s"),
    N_("kept against the changed original: %(parts)s"),
    N_("edits put back over the new translation: %(parts)s"),
    N_("edit kept on %(parts)s, source changed"),
    N_("%(parts)s"),
    # What fetching an article page most often says (aggregator.polling.fetch), for failing entries.
    N_("the server failed (%(status)s)"),
    N_("the server refused the request (%(status)s)"),
    N_("nothing at this address (%(status)s): check the URL"),
    N_("the server did not answer within %(seconds)s s"),
)
_PARTS = re.compile(r"^(?:(?:title|body|blocks? \d+(?:, \d+)*)(?:, |$))+$")
_PART = re.compile(r"title|body|blocks? \d+(?:, \d+)*")
_BLOCK = re.compile(r"^(?P<kind>title|text|<\w+>) «(?P<excerpt>.*)»$", re.S)
STATUS_LABELS = {
    "pending": N_("to review"),
    "approved": N_("published"),
    "rejected": N_("rejected"),
    "withdrawn": N_("withdrawn"),
}
ACTION_LABELS = {
    "drafted": N_("translated"),
    "redrafted": N_("translated again"),
    "edited": N_("edited"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
    "retranslate": N_("retranslation requested"),
    "acknowledged": N_("change of the original seen"),
    "withdrawn": N_("withdrawn from the feeds"),
    "edit-kept": N_("edit kept"),
}


def _pattern(msgid: str) -> re.Pattern[str]:
    pieces = re.split(r"%\((\w+)\)s", msgid)
    regex = "".join(
        re.escape(piece) if i % 2 == 0 else f"(?P<{piece}>.+?)" for i, piece in enumerate(pieces)
    )
    return re.compile(f"^{regex}$", re.S)


_STORED = tuple((_pattern(msgid), msgid) for msgid in STORED)


@dataclass(frozen=True)
class Messages:
    """One language's words: gettext, plurals, dates, durations, labels."""

    language: str
    translations: NullTranslations = field(repr=False, compare=False)

    # ------------------------------------------------------------ gettext

    def gettext(self, message: str, **values: Any) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """Placeholders as in the templates: ``%(num)s`` is ``n``."""
        return self.translations.ngettext(singular, plural, n) % {"num": n, **values}

    # ------------------------------------------------------------ dates and durations

    def duration(self, seconds: float, *, relative: bool = False) -> str:
        """A duration in words ("3 h"); ``relative``: from now ("il y a 3 h", "dans 5 min"),
        negative being the past."""
        text = format_timedelta(
            timedelta(seconds=seconds),
            add_direction=relative,
            format="short",
            locale=self.language,
        )
        return text.translate(_SPACES)

    def ago(self, moment: datetime | None, now: datetime) -> str:
        if moment is None:
            return self.gettext("never")
        return self.duration(min(0.0, (moment - now).total_seconds()), relative=True)

    def until(self, moment: datetime | None, now: datetime) -> str:
        if moment is None:
            return self.gettext("none (paused)")
        seconds = (moment - now).total_seconds()
        return self.gettext("due now") if seconds <= 0 else self.duration(seconds, relative=True)

    def when(self, moment: datetime | None) -> str:
        """Date and time in UTC, year first (2025-02-12 15:00): the audit trail's moments
        sort and compare at a glance, in every language."""
        if moment is None:
            return ""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return format_datetime(moment, WHEN_PATTERN, tzinfo=UTC, locale=self.language)

    def number(self, value: float) -> str:
        """1,234 (English), 1 234 (French)."""
        return format_decimal(value, locale=self.language).translate(_SPACES)

    def amount(self, value: float) -> str:
        """Money in the account's currency, to the hundredth of a cent: 0.0123, 0,0123."""
        return format_decimal(value, "#,##0.00##", locale=self.language).translate(_SPACES)

    def day(self, moment: datetime | None) -> str:
        """The date alone, as this language writes it short (12/02/2025)."""
        return format_date(moment, "short", locale=self.language) if moment else ""

    # ------------------------------------------------------------ labels

    def status_label(self, status: str) -> str:
        return self.gettext(STATUS_LABELS[status]) if status in STATUS_LABELS else status

    def action_label(self, action: str) -> str:
        return self.gettext(ACTION_LABELS[action]) if action in ACTION_LABELS else action

    def parts(self, text: str) -> str:
        """A list of parts ("title, blocks 2, 3") in this language."""

        def one(match: re.Match[str]) -> str:
            word = match.group(0)
            if word == "title":
                return self.gettext("title")
            if word == "body":
                return self.gettext("body")
            numbers = word.split(" ", 1)[1]
            count = numbers.count(",") + 1
            return self.ngettext("block %(numbers)s", "blocks %(numbers)s", count, numbers=numbers)

        return _PART.sub(one, text)

    def stored(self, text: str | None) -> str:
        """A warning or audit detail written in English by the pipeline or the store, in this
        language when it is one of ``STORED``; else as written."""
        if not text or self.language == SOURCE_LANGUAGE:
            return text or ""
        for pattern, msgid in _STORED:
            match = pattern.match(text)
            if match is None:
                continue
            values = dict(match.groupdict())
            if "parts" in values and not _PARTS.match(values["parts"]):
                continue
            for key in ("parts", "kept"):
                if key in values:
                    values[key] = self.parts(values[key])
            if "block" in values:
                values["block"] = self._block(values["block"])
            if "moment" in values:
                values["moment"] = self._moment(values["moment"])
            return self.gettext(msgid, **values)
        return text

    def _block(self, label: str) -> str:
        match = _BLOCK.match(label)
        if match is None:
            return label
        kind = match["kind"]
        if kind == "title":
            kind = self.gettext("title")
        elif kind == "text":
            kind = self.gettext("text")
        return f"{kind} «{match['excerpt']}»"

    def _moment(self, text: str) -> str:
        try:
            return self.when(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC))
        except ValueError:
            return text


ENGLISH = messages(SOURCE_LANGUAGE)


@cache
def language_name(code: str) -> str:
    """A language's name as its own readers write it ("español", "français"), for the link
    from one translation of an article to the others."""
    from babel import Locale, UnknownLocaleError

    try:
        name = Locale.parse(code).get_display_name(code)
    except (ValueError, UnknownLocaleError):
        return code
    return name[:1].upper() + name[1:] if name else code
