"""``aggregator feeds …``: health, OPML import and export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aggregator.cli.base import config_path_of, main, now_of, open_store, settings_of, words_of
from aggregator.cli.output import json_option, print_json, print_table

if TYPE_CHECKING:
    from datetime import datetime

    from aggregator.config import Settings
    from aggregator.desk.health import FeedSheet
    from aggregator.i18n import Messages


@main.group()
def feeds() -> None:
    """Feeds: health, OPML import and export."""


_FEED_FIELDS = (
    "url", "name", "slug", "title", "status", "last_checked_at", "next_check_at",
    "error_count", "last_error", "entries",
)  # fmt: skip


def _feed_json(sheet: FeedSheet) -> dict[str, Any]:
    from aggregator.desk import health
    from aggregator.shapes import feed_settings_json, fields_json, spend_json

    feed = sheet.health
    return {
        **fields_json(feed, _FEED_FIELDS),
        "status_text": health.status_words(feed),
        **fields_json(feed, ("last_success_at", "config_url")),
        "settings": feed_settings_json(sheet.settings),
        "spend": {period: spend_json(spent) for period, spent in sheet.spend.items()},
    }


@feeds.command("list")
@json_option
@click.pass_context
def feeds_list(ctx: click.Context, as_json: bool) -> None:
    """Each feed's status, last and next check, errors, entries, settings and spend."""
    from aggregator.desk import health

    settings, now = settings_of(ctx), now_of(ctx)
    with open_store(settings, upgrade=True) as store:
        store.sync_feeds(settings.feeds, settings, now)
        sheets = health.feed_sheets(settings, store, now)
    if as_json:
        print_json([_feed_json(sheet) for sheet in sheets])
        return
    words = words_of(settings)
    print_table(
        (
            "name",
            "status",
            "last check",
            "next check",
            "errors",
            "entries",
            "today",
            "month",
            "last error",
        ),
        (_feed_row(sheet, now, words) for sheet in sheets),
    )


def _feed_row(sheet: FeedSheet, now: datetime, words: Messages) -> tuple[str, ...]:
    from aggregator.desk import health
    from aggregator.shapes import spend_words

    f = sheet.health
    return (
        f.name, health.status_words(f, words), words.ago(f.last_checked_at, now),
        words.until(f.next_check_at, now), str(f.error_count), str(f.entries),
        spend_words(sheet.spend["today"], words), spend_words(sheet.spend["month"], words),
        f.last_error or "",
    )  # fmt: skip


@feeds.command("import")
@click.argument("opml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def feeds_import(ctx: click.Context, opml: Path) -> None:
    """Print [[feeds]] tables for the feeds of an OPML file, to append to config.toml.

    Feeds that config.toml already follows (by their URL, or the feed URL polling found for
    them) are left out and named on stderr, so the appended config still loads.
    """
    from aggregator.i18n import messages, ui_language
    from aggregator.polling import opml as opml_module

    found = opml_module.read_opml(opml.read_bytes(), str(opml))
    settings = _config_in_use(ctx)
    fresh, skipped = opml_module.new_feeds(found, _followed_urls(settings))
    words = words_of(settings) if settings else messages(ui_language("", "fr"))
    for feed in skipped:
        click.echo(words.gettext("skipped, already configured: %(url)s", url=feed.url), err=True)
    if fresh:
        click.echo(opml_module.feeds_toml(fresh), nl=False)
    else:
        click.echo(words.gettext("every feed of the file is already configured"), err=True)


def _config_in_use(ctx: click.Context) -> Settings | None:
    from aggregator import config as config_module

    path = config_module.config_path(config_path_of(ctx))
    return config_module.load(path) if path.exists() else None


def _followed_urls(settings: Settings | None) -> list[str]:
    """The feed URLs of the config in use, when there is one, and what polling learnt."""
    if settings is None:
        return []
    with open_store(settings, upgrade=True) as store:
        learnt = [url for f in store.feed_health() for url in (f.url, f.config_url)]
    return [feed.url for feed in settings.feeds] + learnt


@feeds.command("export")
@click.pass_context
def feeds_export(ctx: click.Context) -> None:
    """Print the configured feeds as OPML."""
    from aggregator.polling import opml as opml_module

    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        known = {f.config_url: f for f in store.feed_health()}
    click.echo(
        opml_module.write_opml(
            settings.feeds,
            now=now_of(ctx),
            titles={url: f.title for url, f in known.items() if f.title},
            sites={url: f.site_url for url, f in known.items() if f.site_url},
            feed_urls={url: f.url for url, f in known.items() if f.url},
        )
    )
