"""Where an entry's article is taken from: the feed's text or the article's page, shaped
into the article that is translated (the feed's ``remove`` and ``selector``, boilerplate
and recurring blocks out), with the feed's ``headers`` for its own host. Also the page of
an approved draft read again when its feed item changed.

Part of the entry stage (``pipeline``): it may import what the pipeline imports.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING

from aggregator.config import FeedSettings, Settings
from aggregator.config_checks import header_value
from aggregator.errors import AggregatorError, ConfigError
from aggregator.extraction.boilerplate import recorded_drops, remove_boilerplate, remove_recurring
from aggregator.extraction.extract import (
    drop_title_heading,
    feed_content_is_full,
    fragment_names,
    is_link_post,
    keep_fragment_links,
    paywall_reason,
    restructure_cards,
    sanitize,
    select_article,
    text_of,
    without_elements,
)
from aggregator.polling.fetch import Credentials
from aggregator.store import EntryWork
from aggregator.store.memory import FeedContext

if TYPE_CHECKING:
    from aggregator.pipeline import Services

log = logging.getLogger("aggregator.pipeline")

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


def feed_text(entry: EntryWork) -> str:
    """The feed's own text of the entry: its content, else its summary."""
    return entry.content_html or entry.summary_html or ""


def link_to_original(entry: EntryWork) -> tuple[str, str] | str:
    """The body of a draft of a feed with ``translate = "title"``: a paragraph linking to
    the original article, its original title as the link text (sanitized like any body),
    and where it came from; or the reason to skip an entry that has no link."""
    if not entry.url:
        return 'translate = "title" links to the original article, and the entry has no link'
    link = f'<a href="{escape(entry.url, quote=True)}">{escape(entry.title or entry.url)}</a>'
    return sanitize(f"<p>Article original : {link}</p>", entry.url), "feed"


def take_full_text(services: Services, entry: EntryWork) -> tuple[str, str] | str:
    """(sanitized article HTML, where it came from), or the reason to skip the entry.

    The feed's ``full_text`` says where the article is taken from: "auto", the feed when
    it holds the whole text, else the page; "feed", always the feed's text, however short,
    and no page is fetched; "page", always the page (the feed's text only when the entry
    links to none). Members-only previews are recognised from the feed when it says so,
    else from the page, and skipped with the reason before anything is sent to translation.
    """
    reason = paywall_reason(entry.content_html) or paywall_reason(entry.summary_html)
    if reason:
        return reason
    feed = services.settings.feed(entry.feed_config_url)
    context = services.store.feed_context(entry.feed_id, entry.id)
    if feed.full_text != "page" and feed_content_is_full(entry.content_html, entry.summary_html):
        return _from_feed(services, entry, context, entry.content_html or ""), "feed"
    own_text = feed_text(entry)
    if not entry.url or feed.full_text == "feed":
        if not own_text.strip():
            if entry.url:
                return 'the feed holds no text for this entry (its full_text is "feed")'
            return "the entry has no text and no link to an article"
        html = _from_feed(services, entry, context, own_text)
        if entry.url and is_link_post(entry.url, (context.site_url or context.url,)):
            html = with_link_to(html, entry.url, entry.title)
        return html, "feed"
    if (
        feed.full_text == "auto"
        and text_of(own_text)
        and is_link_post(entry.url, (context.site_url or context.url,))
    ):
        # A link blog's post: the feed's text is the blogger's comment on someone else's
        # article. That article is neither fetched nor credited to the blogger: it stays
        # the link the post is about.
        html = _from_feed(services, entry, context, own_text)
        return with_link_to(html, entry.url, entry.title), "feed"
    # A link from feed content is untrusted: the fetcher's SSRF guard applies, unless the
    # feed's own allow_private_networks (else [fetch]'s) lifts it.
    page = services.fetcher.get(
        entry.url,
        accept=PAGE_ACCEPT,
        allow_private=services.settings.private_networks_allowed(entry.feed_config_url),
        credentials=feed_credentials(services.settings, entry.feed_config_url),
    )
    reason = paywall_reason(page.body.decode("utf-8", "replace"))
    if reason:
        return reason
    article = article_of_page(services, feed, page.body, page.url)
    return _shaped(services, entry, context, article), "page"


def article_of_page(services: Services, feed: FeedSettings, page: bytes, url: str) -> str:
    """The article of a fetched page: the feed's ``remove`` dropped first, then the
    element its ``selector`` names, else what the extractor finds."""
    cleaned = without_elements(page, feed.remove)
    if feed.selector:
        return select_article(cleaned, url, feed.selector).html
    return services.extract(cleaned, url).html


def feed_credentials(settings: Settings, feed_url: str) -> Credentials | None:
    """The ``headers`` of the feed written as ``feed_url`` in config.toml, read now from
    where they are kept ("env:…", "file:…"), for that feed's own host only; None without.

    Read at every fetch, so that a renewed cookie is used without a restart, and never
    stored. A header that cannot be read is a ConfigError naming the feed and the header,
    never a value.
    """
    feed = settings.feed(feed_url)
    if not feed.headers:
        return None
    values = {}
    for name, reference in feed.headers.items():
        try:
            values[name] = header_value(reference, settings.path.parent)
        except ValueError as exc:
            raise ConfigError(
                f"the header {name} of the feed {feed.display_name} cannot be read: {exc}"
            ) from None
    return Credentials.for_url(feed_url, values)


def _from_feed(services: Services, entry: EntryWork, context: FeedContext, html: str) -> str:
    """The feed's text of the entry as an article: the feed's ``remove`` and boilerplate
    out, cards as blocks, links inside the article kept inside it."""
    remove = services.settings.feed(entry.feed_config_url).remove
    trimmed = str(without_elements(html, remove))
    cleaned = sanitize(restructure_cards(remove_boilerplate(trimmed)), entry.url or None)
    bases = (entry.url or "", context.url, context.site_url or "")
    return _shaped(
        services, entry, context, keep_fragment_links(cleaned, bases, fragment_names(html))
    )


def _shaped(services: Services, entry: EntryWork, context: FeedContext, html: str) -> str:
    """Without the title repeated on top, and without the feed's recurring blocks
    (``[translation] recurring_blocks = "drop"``, the default; "keep" translates them,
    once, through the memory)."""
    html = drop_title_heading(html, entry.title)
    if services.settings.translation.recurring_blocks == "drop":
        html = remove_recurring(html, context.recent, context.together)
    return html


def dropped_warnings(full_html: str) -> tuple[str, ...]:
    """What the editor is told about the recurring blocks left out of this draft."""
    return tuple(
        f"recurring block left out (it comes back in this feed's entries): «{_excerpt(text)}»"
        for text in recorded_drops(full_html)
    )


def _excerpt(text: str) -> str:
    return text if len(text) <= 80 else text[:77].rstrip() + "…"


def with_link_to(html: str, url: str, title: str) -> str:
    """The article, ending with a link to ``url`` unless it already links there."""
    if any(link == url for link in re.findall(r'href="([^"]*)"', html)):
        return html
    text = escape(title or url, quote=False)
    return f'{html}<p><a href="{escape(url, quote=True)}">{text}</a></p>'


def reread_changed_pages(
    services: Services,
    feed_id: int,
    since: datetime,
    *,
    feed_url: str,
    allow_private: bool | None = None,
) -> int:
    """Read again the article page of each approved draft whose feed item changed since
    ``since`` (this poll), so the desk can show what changed in the original.

    The feed of such a draft carries only an excerpt: without this, the original the
    editor is told has changed looks exactly as reviewed. A page that cannot be read, or
    is now members-only, leaves the stored text as it was; the next change tries again.
    ``allow_private`` is the feed's own setting, as for its article links; ``feed_url``,
    the feed as written in config.toml, gives its ``selector``, ``remove`` and ``headers``.
    How many pages were read again.
    """
    done = 0
    feed = services.settings.feed(feed_url)
    for entry_id, url in services.store.changed_page_originals(feed_id, since):
        try:
            # A link from feed content is untrusted: the fetcher's SSRF guard applies.
            page = services.fetcher.get(
                url,
                allow_private=allow_private,
                accept=PAGE_ACCEPT,
                credentials=feed_credentials(services.settings, feed_url),
            )
            if paywall_reason(page.body.decode("utf-8", "replace")):
                log.info("entry %s: the changed page is now members-only; kept as it was", url)
                continue
            html = article_of_page(services, feed, page.body, page.url)
        except AggregatorError as exc:
            log.warning("entry %s: the changed page could not be read again: %s", url, exc)
            continue
        services.store.save_reread_page(entry_id, html, now=services.clock())
        done += 1
    return done
