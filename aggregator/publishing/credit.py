"""The visible credit line that closes every published article, in the article's language.

Its words are messages of the Babel catalogues (``aggregator/locale``): French and Spanish
have their own; any other target language gets the English msgids, with its own long date
from Babel's locale data. No I/O.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from aggregator.extraction.extract import sanitize
from aggregator.i18n import messages
from aggregator.msgid import N_
from aggregator.store import DraftView
from aggregator.untrusted import safe_http_url

FRENCH_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)  # fmt: skip
ENGINE_NAMES = {
    "google": N_("Google Translate"),
    "libre": "LibreTranslate",
    "deepl": "DeepL",
    "microsoft": "Microsoft Translator",
    "mymemory": "MyMemory",
}
# The feeds' subtitle, in each language.
SUBTITLE = N_("English newsletters in translation, with their source")


def subtitle(language: str) -> str:
    """The feeds' subtitle in ``language`` (English for one with no catalogue)."""
    return messages(language).gettext(SUBTITLE)


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
    """The visible credit line that closes every published article, in its language:
    "Source : LINK — article original de AUTHOR, publié le DATE dans SOURCE. Traduction …"."""
    words = messages(draft.target_language)
    original_url = safe_http_url(draft.original_url)
    title = escape(draft.original_title or original_url or words.gettext("original article"))
    link = f'<a href="{escape(original_url, quote=True)}">{title}</a>' if original_url else title
    origin = (
        words.gettext("— original article by %(author)s", author=escape(draft.author))
        if draft.author
        else words.gettext("— original article")
    )
    line = words.gettext("Source: %(link)s", link=link) + " " + origin
    if draft.published_at:
        date = public_date(draft.published_at, draft.target_language)
        line += ", " + words.gettext("published on %(date)s", date=escape(date))
    line += " " + words.gettext("in %(source)s.", source=escape(source_name(draft)))
    engine = escape(words.gettext(ENGINE_NAMES.get(draft.engine, draft.engine)))
    if draft.auto_published and draft.approved_at:
        # Its feed has review = "auto": published at once, and the reader is told so.
        notice = words.gettext("Machine translation (%(engine)s), not reviewed.", engine=engine)
    elif draft.reviewed_by and draft.approved_at:
        notice = words.gettext(
            "Machine translation (%(engine)s) reviewed by %(reviewer)s.",
            engine=engine,
            reviewer=escape(draft.reviewed_by),
        )
    elif draft.approved_at:
        # Approved by someone who gave no name: reviewed all the same, and nobody is named.
        notice = words.gettext(
            "Machine translation (%(engine)s), reviewed before publication.", engine=engine
        )
    else:
        notice = words.gettext("Machine translation (%(engine)s), not yet reviewed.", engine=engine)
    # Sanitized like the body: names and titles come from outside.
    return sanitize(f"<p><small>{line} {notice}</small></p>")
