"""Command line: argument parsing and output only. AggregatorError -> message, exit 1."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from aggregator import __version__, health
from aggregator import config as config_module
from aggregator import opml as opml_module
from aggregator.config import Settings
from aggregator.errors import AggregatorError
from aggregator.models import DraftStatus
from aggregator.pipeline import Report, Services, process_backlog
from aggregator.polling import poll_feeds
from aggregator.publish import credit_html
from aggregator.store import DraftView, FeedHealth, Overview, Store

err = Console(stderr=True)
out = Console()


class AggregatorGroup(click.Group):
    """Turns every AggregatorError into one readable line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AggregatorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=AggregatorGroup)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration file (default: $AGGREGATOR_CONFIG, else ./config.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: bool) -> None:
    """Follow English newsletters; review French translations; republish them as feeds."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "apscheduler", "urllib3", "trafilatura", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = config_path


def _settings(ctx: click.Context) -> Settings:
    return config_module.load(ctx.find_root().obj)


@contextmanager
def _store(settings: Settings, *, upgrade: bool = False) -> Iterator[Store]:
    store = Store.from_settings(settings)
    try:
        if upgrade:
            store.upgrade()
        yield store
    finally:
        store.close()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _reviewer() -> str:
    return os.environ.get("AGGREGATOR_REVIEWER") or getpass.getuser()


# ---------------------------------------------------------------- daemon


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The daemon: scheduler, pipeline and web server in one process."""
    from aggregator.daemon import Daemon

    settings = _settings(ctx)
    sys.exit(Daemon(settings, Store.from_settings(settings)).run())


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Scheduler and pipeline only (no web server)."""
    from aggregator.daemon import Daemon

    settings = _settings(ctx)
    sys.exit(Daemon(settings, Store.from_settings(settings), web=False).run())


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Web server only: published feeds, article pages, review."""
    from aggregator.daemon import Daemon

    settings = _settings(ctx)
    sys.exit(Daemon(settings, Store.from_settings(settings), worker=False).run())


@main.command()
@click.option("--feed", "feeds", multiple=True, help="Only this feed (name or URL); repeatable.")
@click.option("--fetch-only", is_flag=True, help="Stop after storing entries.")
@click.pass_context
def poll(ctx: click.Context, feeds: tuple[str, ...], fetch_only: bool) -> None:
    """Poll now, ignoring schedules, then process every waiting entry."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        store.sync_feeds(settings.feeds, settings, Services.now())
        unknown = store.unknown_feed_names(feeds)
        if unknown:
            raise AggregatorError(f"no feed named {', '.join(map(repr, unknown))} in the config")
        services = Services.build(settings, store)
        report = Report()
        try:
            with _progress("feeds", len(feeds) or len(settings.feeds)) as advance:
                poll_feeds(services, force=True, only=feeds, report=report, on_progress=advance)
            if not fetch_only:
                waiting = sum(v for k, v in store.backlog(Services.now()).items()
                              if k in ("new", "extracted"))  # fmt: skip
                with _progress("entries", waiting) as advance:
                    process_backlog(services, retry_failed=True, report=report, on_progress=advance)
        finally:
            services.close()
    _print_summary(report)


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[], None]]:
    if not err.is_terminal or total == 0:
        yield lambda: None
        return
    with Progress(
        TextColumn(f"{label:8}"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def _print_summary(report: Report) -> None:
    feeds, entries = report.feeds, report.entries
    click.echo(
        f"feeds: {feeds['updated']} updated, {feeds['unchanged']} unchanged, "
        f"{feeds['failed']} failed; entries: {entries['new']} new, {entries['updated']} updated, "
        f"{entries['drafted']} drafted, {entries['skipped']} skipped, {entries['failed']} failed"
    )
    for line in report.errors:
        click.echo(f"  error: {line}", err=True)


# ---------------------------------------------------------------- feeds


@main.group()
def feeds() -> None:
    """Feeds: health, OPML import and export."""


def _feed_json(feed: FeedHealth) -> dict[str, Any]:
    return {
        "url": feed.url,
        "name": feed.name,
        "slug": feed.slug,
        "title": feed.title,
        "status": feed.status,
        "last_checked_at": _iso(feed.last_checked_at),
        "next_check_at": _iso(feed.next_check_at),
        "error_count": feed.error_count,
        "last_error": feed.last_error,
        "entries": feed.entries,
        "status_text": health.status_words(feed),
        "last_success_at": _iso(feed.last_success_at),
        "config_url": feed.config_url,
    }


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def feeds_list(ctx: click.Context, as_json: bool) -> None:
    """Each feed's status, last and next check, errors and entries."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        store.sync_feeds(settings.feeds, settings, Services.now())
        feeds_health = store.feed_health()
    if as_json:
        _print_json([_feed_json(f) for f in feeds_health])
        return
    now = Services.now()
    table = Table("name", "status", "last check", "next check", "errors", "entries", "last error")
    for f in feeds_health:
        table.add_row(
            f.name, health.status_words(f), health.ago(f.last_checked_at, now),
            health.until(f.next_check_at, now), str(f.error_count), str(f.entries),
            f.last_error or "",
        )  # fmt: skip
    out.print(table)


@feeds.command("import")
@click.argument("opml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def feeds_import(opml: Path) -> None:
    """Print [[feeds]] tables for the feeds of an OPML file, to append to config.toml."""
    found = opml_module.read_opml(opml.read_bytes(), str(opml))
    click.echo(opml_module.feeds_toml(found), nl=False)


@feeds.command("export")
@click.pass_context
def feeds_export(ctx: click.Context) -> None:
    """Print the configured feeds as OPML."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        known = {f.config_url: f for f in store.feed_health()}
    click.echo(
        opml_module.write_opml(
            settings.feeds,
            now=Services.now(),
            titles={url: f.title for url, f in known.items() if f.title},
            sites={url: f.site_url for url, f in known.items() if f.site_url},
        )
    )


# ---------------------------------------------------------------- drafts


@main.group()
def drafts() -> None:
    """Review drafts: list, show, approve, reject, edit, retranslate."""


def _draft_summary(d: DraftView) -> dict[str, Any]:
    return {
        "id": d.id,
        "status": d.status.value,
        "title": d.title,
        "original_title": d.original_title,
        "original_url": d.original_url,
        "author": d.author,
        "feed": d.feed,
        "created_at": _iso(d.created_at),
        "updated_at": _iso(d.updated_at),
        "warnings": list(d.warnings),
    }


def _draft_detail(d: DraftView) -> dict[str, Any]:
    return {
        **_draft_summary(d),
        "body_html": d.body_html,
        "credit_html": credit_html(d),
        "published_at": _iso(d.published_at),
        "approved_at": _iso(d.approved_at),
        "reviewed_by": d.reviewed_by,
        "engine": d.engine,
        "source_language": d.source_language,
        "target_language": d.target_language,
        "characters": d.characters,
        "requests": d.requests,
        "version": d.version,
    }


@drafts.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def drafts_list(ctx: click.Context, status: str, as_json: bool) -> None:
    """Drafts waiting for review (or of another status)."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        items = store.list_drafts(None if status == "all" else DraftStatus(status))
    if as_json:
        _print_json([_draft_summary(d) for d in items])
        return
    table = Table("id", "status", "title", "feed", "created", "warnings")
    for d in items:
        table.add_row(
            str(d.id), d.status.value, d.title, d.feed, _iso(d.created_at) or "",
            str(len(d.warnings)) if d.warnings else "",
        )  # fmt: skip
    out.print(table)


@drafts.command("show")
@click.argument("draft_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def drafts_show(ctx: click.Context, draft_id: int, as_json: bool) -> None:
    """One draft in full: French title and body, and what it was made from."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        draft = store.get_draft(draft_id)
    if as_json:
        _print_json(_draft_detail(draft))
        return
    click.echo(f"#{draft.id} [{draft.status.value}] {draft.title}")
    click.echo(f"original: {draft.original_title} — {draft.author or 'unknown author'}")
    click.echo(f"          {draft.original_url} ({draft.feed})")
    click.echo(
        f"engine:   {draft.engine}, {draft.characters} characters, {draft.requests} requests"
    )
    for warning in draft.warnings:
        click.echo(f"warning:  {warning}")
    click.echo()
    click.echo(draft.body_html)


def _each(
    ctx: click.Context, ids: Sequence[int], action: Callable[[Store, int], DraftView], verb: str
) -> None:
    settings = _settings(ctx)
    failures = 0
    with _store(settings, upgrade=True) as store:
        for draft_id in ids:
            try:
                draft = action(store, draft_id)
            except AggregatorError as exc:
                click.echo(f"error: {exc}", err=True)
                failures += 1
                continue
            click.echo(f"{verb} draft {draft.id}: {draft.title}")
    if failures:
        sys.exit(1)


@drafts.command("approve")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option(
    "--as",
    "actor",
    default=None,
    help="Reviewer name (default: $AGGREGATOR_REVIEWER or your login).",
)
@click.pass_context
def drafts_approve(ctx: click.Context, ids: tuple[int, ...], actor: str | None) -> None:
    """Approve drafts: they appear in the published feeds."""
    who = actor or _reviewer()
    _each(ctx, ids, lambda s, i: s.approve(i, actor=who, now=Services.now()), "approved")


@drafts.command("reject")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--as", "actor", default=None, help="Reviewer name.")
@click.pass_context
def drafts_reject(ctx: click.Context, ids: tuple[int, ...], actor: str | None) -> None:
    """Reject drafts: they are never published, and their entries never come back."""
    who = actor or _reviewer()
    _each(ctx, ids, lambda s, i: s.reject(i, actor=who, now=Services.now()), "rejected")


@drafts.command("retranslate")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--as", "actor", default=None, help="Reviewer name.")
@click.pass_context
def drafts_retranslate(ctx: click.Context, ids: tuple[int, ...], actor: str | None) -> None:
    """Send drafts back to translation (done by the next poll or backlog tick)."""
    who = actor or _reviewer()
    _each(
        ctx, ids, lambda s, i: s.request_retranslation(i, actor=who, now=Services.now()),
        "queued for retranslation",
    )  # fmt: skip


@drafts.command("edit")
@click.argument("draft_id", type=int)
@click.option("--title", default=None, help="New French title.")
@click.option(
    "--body-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="File holding the new French body (HTML).",
)  # fmt: skip
@click.option("--as", "actor", default=None, help="Reviewer name.")
@click.pass_context
def drafts_edit(
    ctx: click.Context, draft_id: int, title: str | None, body_file: Path | None, actor: str | None
) -> None:
    """Edit a draft's title or body; with no option, opens $EDITOR."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        draft = store.get_draft(draft_id)
        body = body_file.read_text(encoding="utf-8") if body_file else None
        if title is None and body is None:
            title, body = _edit_in_editor(draft)
        updated = store.edit(
            draft_id, actor=actor or _reviewer(), now=Services.now(), title=title, body_html=body
        )
    click.echo(f"edited draft {updated.id}: {updated.title}")


_SEPARATOR = "<!-- Write the French body below this line. -->"


def _edit_in_editor(draft: DraftView) -> tuple[str, str]:
    text = click.edit(f"{draft.title}\n{_SEPARATOR}\n{draft.body_html}\n", extension=".html")
    if text is None:
        raise AggregatorError("edit cancelled: nothing was saved")
    head, separator, body = text.partition(_SEPARATOR)
    if not separator:
        raise AggregatorError("edit refused: the separator line was removed")
    title = head.strip()
    if not title:
        raise AggregatorError("edit refused: the title is empty")
    return title, body.strip()


# ---------------------------------------------------------------- admin


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the database migrations (run automatically by run and poll)."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        click.echo(f"database {store.safe_url} is up to date")


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def db_backup(ctx: click.Context, path: Path) -> None:
    """Copy the live SQLite database to PATH (a new file) while the daemon keeps running."""
    settings = _settings(ctx)
    with _store(settings) as store:
        result = store.backup(path)
    click.echo(f"backed up {store.safe_url} to {result.path} ({result.size} bytes, checked)")


@main.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the configuration file and say what it sets up."""
    settings = _settings(ctx)
    click.echo(
        f"{settings.path}: ok — {len(settings.feeds)} feeds, engine {settings.translation.engine}, "
        f"{'/'.join(settings.translation.source_languages)} → "
        f"{settings.translation.target_language}"
    )


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """What the daemon has done and what waits: feeds, entries, drafts."""
    settings = _settings(ctx)
    with _store(settings, upgrade=True) as store:
        store.sync_feeds(settings.feeds, settings, Services.now())
        feeds_health = store.feed_health()
        backlog = store.backlog(Services.now())
        counts = store.draft_counts()
        overview = store.overview(Services.now())
        database = store.safe_url
        budget_paused = store.paused_by_budget()
    failing = [f for f in feeds_health if f.status in ("error", "gone")]
    click.echo(f"feeds:   {len(feeds_health)} ({len(failing)} failing)")
    for f in feeds_health:
        click.echo(f"  {health.describe(f, Services.now())}")
    click.echo(
        f"entries: {backlog.get('new', 0)} waiting for text, {backlog.get('extracted', 0)} waiting "
        f"for translation ({backlog.get('failing', 0)} failing), {backlog.get('drafted', 0)} "
        f"drafted, {backlog.get('skipped', 0)} skipped"
    )
    click.echo(
        f"drafts:  {counts['pending']} pending, {counts['approved']} approved, "
        f"{counts['rejected']} rejected"
    )
    _print_work(overview, database)
    _print_budgets(settings, overview, *budget_paused)


def _print_budgets(settings: Settings, overview: Overview, paused: int, reason: str | None) -> None:
    """Each engine's daily character budget, and whether translation is paused by it."""
    translation = settings.translation
    for name in (translation.engine, *translation.fallback):
        budget = translation.engine_settings(name).daily_characters
        if budget:
            spent = overview.engines_today.get(name)
            used = spent.characters if spent else 0
            click.echo(f"budget:  {name}: {used:,} of {budget:,} characters spent today (UTC)")
    if paused:
        click.echo(f"translation paused: {reason} ({paused} entries wait)")


def _print_work(overview: Overview, database: str) -> None:
    """Queues, claims and engine usage: is the daemon keeping up, is a worker gone?"""
    due, late = overview.due, overview.overdue_seconds
    click.echo(
        f"due now: {due.get('feeds', 0)} feeds, {due.get('text', 0)} entries for text, "
        f"{due.get('translation', 0)} for translation; most overdue "
        f"{_duration(max(late.values(), default=0.0))}"
    )
    click.echo(
        f"claims:  {overview.claims_held} entries in progress, {overview.claims_expired} "
        "left by a stopped process (taken up again by any worker)"
    )
    for engine, totals in overview.engines_today.items():
        click.echo(
            f"engine:  {engine}: {totals.characters} characters in {totals.requests} "
            "requests today (UTC)"
        )
    click.echo(f"database: {database}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
