"""JSON shapes that the command line and the API print alike: one writer of each."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from aggregator.languages import article_path
from aggregator.store import DraftView
from aggregator.store.stats import NOTHING_SPENT, FeedSpend
from aggregator.untrusted import plain_text, safe_http_url

if TYPE_CHECKING:
    from aggregator.config import FeedSettings
    from aggregator.desk.service import DraftPage
    from aggregator.i18n import Messages


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as every JSON output writes a moment."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def fields_json(view: object, names: Iterable[str]) -> dict[str, Any]:
    """The named attributes of a view as JSON values: moments in ISO 8601, states by value."""
    return {name: _json_value(getattr(view, name)) for name in names}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value.value if isinstance(value, Enum) else value


def feed_settings_json(feed: FeedSettings) -> dict[str, Any]:
    """A feed's own settings, ``[defaults]`` applied; headers by name and where they are
    read from (``env:…``, ``file:…``), never their values."""
    from aggregator.config import FeedDefaults

    shown = fields_json(feed, (f.name for f in dataclasses.fields(FeedDefaults)))
    shown["interval"] = float(feed.interval) if feed.interval is not None else None
    return {key: list(value) if isinstance(value, tuple) else value for key, value in shown.items()}


def spend_json(spend: FeedSpend | None) -> dict[str, Any]:
    """What a feed's drafts of a period cost: characters, requests, tokens, money."""
    names = ("characters", "requests", "prompt_tokens", "completion_tokens", "cost")
    return fields_json(spend or NOTHING_SPENT, names)


def spend_words(spend: FeedSpend | None, words: Messages) -> str:
    """A feed's spend of a period in a table cell: characters or tokens, and money."""
    if spend is None:
        return ""
    if spend.tokens:
        used = words.gettext("%(num)s tokens", num=words.number(spend.tokens))
    else:
        used = words.gettext("%(num)s characters", num=words.number(spend.characters))
    return f"{used}, {words.amount(spend.cost)}" if spend.cost else used


def edits_json(draft: DraftView) -> dict[str, Any]:
    """What an editor changed in a draft and where its original changed since."""
    return {
        # Parts changed by an editor ("title", "block N" from 1, "body"): kept over redrafts.
        "edited": list(draft.edited),
        "edit_flags": [
            {
                "part": f.part,
                "index": f.index,
                "text": f.text,
                "old_source": f.old_source,
                "new_source": f.new_source,
                "flagged_at": iso(f.flagged_at),
            }
            for f in draft.flags
        ],
        "review_policy": "manual",
    }


def draft_summary_json(draft: DraftView, base_url: str, *, main_language: str) -> dict[str, Any]:
    """A draft as an item of a list: ``aggregator drafts list --json`` and ``GET /api/drafts``.

    ``base_url`` (``[server] base_url``) and ``main_language`` (``[translation]
    target_language``, published at the root paths) make the published article's address.
    Text and links leave here as they leave in the feeds: no control characters, web URLs
    only.
    """
    d = draft
    article = base_url.rstrip("/") + article_path(d.id, d.target_language, main_language)
    return {
        "id": d.id,
        "status": d.status.value,
        "version": d.version,
        "title": plain_text(d.title),
        "original_title": plain_text(d.original_title),
        "original_url": safe_http_url(d.original_url),
        "author": plain_text(d.author) if d.author else d.author,
        "feed": d.feed,
        "feed_slug": d.feed_slug,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "approved_at": iso(d.approved_at),
        "reviewed_by": d.reviewed_by,
        "warnings": list(d.warnings),
        "stale": d.stale,
        "language": d.target_language,
        "article_url": article if d.published else None,
        "published": d.published,
        "auto_published": d.auto_published,
        "withdrawn_at": iso(d.withdrawn_at),
    }


def draft_json(page: DraftPage, base_url: str, *, main_language: str) -> dict[str, Any]:
    """One draft in full: ``aggregator drafts show --json`` and ``GET /api/drafts/{id}``.

    ``page`` is the desk's ``Desk.page(id)``: the draft with its blocks beside the original,
    what changed in the original of a stale draft, and its history. Everything of
    ``draft_summary_json`` plus the body, the credit line, the translation's engine and
    cost, and what an editor changed (``edits_json``).
    """
    # Publishing pulls in the extraction stack: only the commands that show a draft pay for it.
    from aggregator.publishing.credit import credit_html

    d = page.draft
    changes = page.changes
    return {
        **draft_summary_json(d, base_url, main_language=main_language),
        "body_html": d.body_html,
        "credit_html": credit_html(d),
        "published_at": iso(d.published_at),
        "engine": d.engine,
        "source_language": d.source_language,
        "target_language": d.target_language,
        "characters": d.characters,
        "requests": d.requests,
        "source_changed_at": iso(d.source_changed_at),
        **edits_json(d),
        "blocks": [
            {
                "index": p.index,
                "tag": p.tag,
                "original_html": p.original_html,
                "french_html": p.french_html,
            }
            for p in page.pairs
        ],
        "source_changes": (
            [{"kind": c.kind, "text": c.text} for c in changes] if changes is not None else None
        ),
        "events": [
            {"action": e.action, "actor": e.actor, "detail": e.detail, "at": iso(e.at)}
            for e in page.detail.events
        ],
    }
