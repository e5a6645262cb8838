"""``run``, ``worker``, ``serve`` and ``poll``: the daemon, its halves, and a poll now."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import click

from aggregator.cli.base import clock_of, main, now_of, open_store, settings_of, words_of
from aggregator.cli.output import console
from aggregator.errors import AggregatorError

if TYPE_CHECKING:
    from aggregator.i18n import Messages
    from aggregator.pipeline import Report


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The daemon: scheduler, pipeline and web server in one process."""
    _run_daemon(ctx)


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Scheduler and pipeline only (no web server)."""
    _run_daemon(ctx, web=False)


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Web server only: published feeds, article pages, review."""
    _run_daemon(ctx, worker=False)


def _run_daemon(ctx: click.Context, *, web: bool = True, worker: bool = True) -> NoReturn:
    from aggregator.service.daemon import Daemon
    from aggregator.store import Store

    settings = settings_of(ctx)
    sys.exit(Daemon(settings, Store.from_settings(settings), web=web, worker=worker).run())


@main.command()
@click.option("--feed", "feeds", multiple=True, help="Only this feed (name or URL); repeatable.")
@click.option("--fetch-only", is_flag=True, help="Stop after storing entries.")
@click.pass_context
def poll(ctx: click.Context, feeds: tuple[str, ...], fetch_only: bool) -> None:
    """Poll now, ignoring schedules, then process every waiting entry."""
    from aggregator.pipeline import Report, Services, process_backlog
    from aggregator.polling.parse_worker import release_idle
    from aggregator.polling.refresh import poll_feeds

    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        store.sync_feeds(settings.feeds, settings, now_of(ctx))
        unknown = store.unknown_feed_names(feeds)
        if unknown:
            raise AggregatorError(f"no feed named {', '.join(map(repr, unknown))} in the config")
        services = Services.build(settings, store, clock_of(ctx))
        report = Report()
        try:
            with _progress("feeds", len(feeds) or len(settings.feeds)) as advance:
                poll_feeds(services, force=True, only=feeds, report=report, on_progress=advance)
            release_idle()  # every feed is read: the parser's memory is the entries' now
            if not fetch_only:
                waiting = sum(v for k, v in store.backlog(now_of(ctx)).items()
                              if k in ("new", "extracted"))  # fmt: skip
                with _progress("entries", waiting) as advance:
                    process_backlog(services, retry_failed=True, report=report, on_progress=advance)
        finally:
            services.close()
    _print_summary(report, words_of(settings))


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[], None]]:
    terminal = console(stderr=True)
    if not terminal.is_terminal or total == 0:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(f"{label:8}"), BarColumn(), MofNCompleteColumn(), console=terminal,
        transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def _print_summary(report: Report, words: Messages) -> None:
    feeds, entries = report.feeds, report.entries
    click.echo(
        words.gettext(
            "feeds: %(updated)s, %(unchanged)s, %(failed)s; entries: %(new)s, "
            "%(changed)s, %(drafted)s, %(skipped)s, %(failing)s",
            updated=words.ngettext("%(num)s updated", "%(num)s updated", feeds["updated"]),
            unchanged=words.ngettext("%(num)s unchanged", "%(num)s unchanged", feeds["unchanged"]),
            failed=words.ngettext("%(num)s failed", "%(num)s failed", feeds["failed"]),
            new=words.ngettext("%(num)s new", "%(num)s new", entries["new"]),
            changed=words.ngettext("%(num)s changed", "%(num)s changed", entries["updated"]),
            drafted=words.ngettext("%(num)s drafted", "%(num)s drafted", entries["drafted"]),
            skipped=words.ngettext("%(num)s skipped", "%(num)s skipped", entries["skipped"]),
            failing=words.ngettext("%(num)s failed", "%(num)s failed", entries["failed"]),
        )
    )
    if entries["published"]:
        click.echo(
            words.ngettext(
                '%(num)s draft published unreviewed (review = "auto")',
                '%(num)s drafts published unreviewed (review = "auto")',
                entries["published"],
            )
        )
    for line in report.errors:
        click.echo(f"  error: {line}", err=True)
