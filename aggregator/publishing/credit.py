"""The visible credit line that closes every published article, in the article's language.

French and Spanish have their own words; any other target language gets English ones (and
its own long date, from Babel's locale data), so that an article is never credited in a
language its reader did not ask for without a credit at all. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

from aggregator.extraction.extract import sanitize
from aggregator.store import DraftView
from aggregator.untrusted import safe_http_url

FRENCH_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)  # fmt: skip


@dataclass(frozen=True)
class CreditWords:
    """One language's credit line, piece by piece; ``{…}`` are filled in, escaped."""

    source: str
    by: str
    anonymous: str
    published: str
    where: str
    unreviewed_auto: str  # published at once, its feed has review = "auto"
    reviewed_by: str
    reviewed: str  # approved by someone who gave no name
    not_yet_reviewed: str
    original: str  # the link's text when the original has no title
    subtitle: str  # the feeds' subtitle
    engine_names: dict[str, str]


_ENGINES = {
    "google": "Google Translate",
    "libre": "LibreTranslate",
    "deepl": "DeepL",
    "microsoft": "Microsoft Translator",
    "mymemory": "MyMemory",
}
WORDS = {
    "fr": CreditWords(
        source="Source : {link}",
        by=" — article original de {author}",
        anonymous=" — article original",
        published=", publié le {date}",
        where=" dans {source}.",
        unreviewed_auto=" Traduction automatique ({engine}), non relue.",
        reviewed_by=" Traduction automatique ({engine}) relue par {reviewer}.",
        reviewed=" Traduction automatique ({engine}), relue avant publication.",
        not_yet_reviewed=" Traduction automatique ({engine}), pas encore relue.",
        original="article original",
        subtitle="Newsletters anglaises traduites en français, avec leur source",
        engine_names={**_ENGINES, "google": "Google Traduction"},
    ),
    "es": CreditWords(
        source="Fuente: {link}",
        by=" — artículo original de {author}",
        anonymous=" — artículo original",
        published=", publicado el {date}",
        where=" en {source}.",
        unreviewed_auto=" Traducción automática ({engine}), sin revisar.",
        reviewed_by=" Traducción automática ({engine}) revisada por {reviewer}.",
        reviewed=" Traducción automática ({engine}), revisada antes de su publicación.",
        not_yet_reviewed=" Traducción automática ({engine}), todavía sin revisar.",
        original="artículo original",
        subtitle="Boletines en inglés traducidos al español, con su fuente",
        engine_names={**_ENGINES, "google": "Google Traductor"},
    ),
    "en": CreditWords(
        source="Source: {link}",
        by=" — original article by {author}",
        anonymous=" — original article",
        published=", published on {date}",
        where=" in {source}.",
        unreviewed_auto=" Machine translation ({engine}), not reviewed.",
        reviewed_by=" Machine translation ({engine}) reviewed by {reviewer}.",
        reviewed=" Machine translation ({engine}), reviewed before publication.",
        not_yet_reviewed=" Machine translation ({engine}), not yet reviewed.",
        original="original article",
        subtitle="English newsletters in translation, with their source",
        engine_names=_ENGINES,
    ),
}


def words_for(language: str) -> CreditWords:
    return WORDS.get(language, WORDS["en"])


def french_date(moment: datetime) -> str:
    day = "1er" if moment.day == 1 else str(moment.day)
    return f"{day} {FRENCH_MONTHS[moment.month - 1]} {moment.year}"


def public_date(moment: datetime, language: str) -> str:
    """A date as the readers of ``language`` write it: "3 décembre 2026", "3 de diciembre
    de 2026"."""
    if language == "fr":
        return french_date(moment)
    from babel.dates import format_date  # only for the other languages' pages

    return format_date(moment, "long", locale=language)


def source_label(name: str, title: str | None) -> str:
    """The source as the operator named it in config.toml, else the feed's own title.

    A feed with no configured ``name`` is stored under its URL (``FeedSettings.display_name``).
    """
    named = name and not name.startswith(("http://", "https://"))
    return name if named else (title or name)


def source_name(draft: DraftView) -> str:
    return source_label(draft.feed, draft.feed_title)


def credit_html(draft: DraftView) -> str:
    """The visible credit line that closes every published article, in its language."""
    words = words_for(draft.target_language)
    original_url = safe_http_url(draft.original_url)
    title = escape(draft.original_title or original_url or words.original)
    link = f'<a href="{escape(original_url, quote=True)}">{title}</a>' if original_url else title
    parts = [words.source.format(link=link)]
    if draft.author:
        parts.append(words.by.format(author=escape(draft.author)))
    else:
        parts.append(words.anonymous)
    if draft.published_at:
        date = public_date(draft.published_at, draft.target_language)
        parts.append(words.published.format(date=escape(date)))
    parts.append(words.where.format(source=escape(source_name(draft))))
    engine = escape(words.engine_names.get(draft.engine, draft.engine))
    if draft.auto_published and draft.approved_at:
        # Its feed has review = "auto": published at once, and the reader is told so.
        parts.append(words.unreviewed_auto.format(engine=engine))
    elif draft.reviewed_by and draft.approved_at:
        parts.append(words.reviewed_by.format(engine=engine, reviewer=escape(draft.reviewed_by)))
    elif draft.approved_at:
        # Approved by someone who gave no name: reviewed all the same, and nobody is named.
        parts.append(words.reviewed.format(engine=engine))
    else:
        parts.append(words.not_yet_reviewed.format(engine=engine))
    # Sanitized like the body: names and titles come from outside.
    return sanitize(f"<p><small>{''.join(parts)}</small></p>")
