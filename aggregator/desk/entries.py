"""Entries as the editor reads them, the same in the CLI, the API and the desk: one JSON
shape, the reason explained in the desk's language, and the editor's pasted text taken in.

The reasons are stored as the pipeline wrote them (and shown as such); the desk adds a
sentence in its own language in front of the ones it recognises.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aggregator.config import Settings
from aggregator.errors import InvalidEditError
from aggregator.extraction.extract import sanitize, text_of
from aggregator.extraction.language import detect
from aggregator.i18n import Messages
from aggregator.shapes import fields_json
from aggregator.store import EntryListing, Store

# The one JSON shape of an entry, in this order; ``stage`` is the stored state behind ``state``.
ENTRY_FIELDS = (
    "id", "feed", "title", "url", "state", "reason", "attempts", "last_error",
    "next_attempt_at", "feed_slug", "stage", "published_at", "updated_at",
    "full_text_source", "draft_id",
)  # fmt: skip
# What an editor can do with an entry in each listed state.
RETRYABLE = ("skipped", "failing", "pending")

_PAYWALL = re.compile(r"^members-only post \((?P<platform>[^)]+) paywall\)")
_LANGUAGE = re.compile(
    r"^not translated: language is '(?P<found>[^']+)', not one of (?P<wanted>.+)$"
)
_UNDETECTED = "not translated: the language could not be detected"
_NO_TEXT = "the entry has no text and no link to an article"


def entry_json(entry: EntryListing) -> dict[str, Any]:
    """The one JSON shape of an entry: ``aggregator entries list --json`` and /api/entries."""
    return fields_json(entry, ENTRY_FIELDS)


def explain_reason(reason: str | None, words: Messages) -> str | None:
    """What a stored skip reason means for the editor, in the desk's language, for the
    reasons the desk recognises; else None (the stored reason is shown as it is)."""
    if not reason:
        return None
    if match := _PAYWALL.match(reason):
        return words.gettext(
            "Members-only post (%(platform)s paywall): only an excerpt is public, and it was "
            "not translated. Paste a licensed copy of the text to translate it.",
            platform=match["platform"],
        )
    if match := _LANGUAGE.match(reason):
        return words.gettext(
            "Not translated: the article is in “%(found)s”, not in one of the languages "
            "followed (%(wanted)s).",
            found=match["found"],
            wanted=match["wanted"],
        )
    if reason.startswith(_UNDETECTED):
        return words.gettext("Not translated: its language cannot be told (too little text).")
    if reason.startswith(_NO_TEXT):
        return words.gettext("No text in the feed, and no link to the article.")
    return None


def translate_pasted_text(
    store: Store, settings: Settings, entry_id: int, html: str, *, now: datetime
) -> EntryListing:
    """The editor's copy of the article (HTML, e.g. a licensed text of a members-only post)
    becomes the entry's full text, sanitized like any outside HTML, and waits for
    translation: the next pass makes it a draft."""
    entry = store.get_entry_listing(entry_id)
    clean = sanitize(html, entry.url)
    text = text_of(clean)
    if not text:
        raise InvalidEditError("the pasted text is empty once sanitized: nothing to translate")
    wanted = settings.translation.source_languages
    language = detect(f"{entry.title}\n{text}")
    if language is None or language not in wanted:
        found = f"reads as {language!r}" if language else "is too short to tell its language"
        raise InvalidEditError(
            f"the pasted text {found}; only {', '.join(wanted)} is translated "
            "([translation] source_languages)"
        )
    return store.paste_full_text(entry_id, full_html=clean, language=language, now=now)
