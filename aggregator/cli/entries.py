"""``aggregator entries …``: what the pipeline skipped or keeps failing on, and retries."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aggregator.cli.base import main, now_of, open_store, settings_of, words_of
from aggregator.cli.output import json_option, print_json, print_table, state_option
from aggregator.errors import AggregatorError


@main.group()
def entries() -> None:
    """Entries with no draft: skipped (and why), failing (and the last error); retry them."""


@entries.command("list")
@state_option("--state", ("skipped", "failing", "pending", "drafted", "all"), "all")
@click.option("--feed", default=None, help="Only this feed (name, slug or URL).")
@json_option
@click.pass_context
def entries_list(ctx: click.Context, state: str, feed: str | None, as_json: bool) -> None:
    """Entries of one state, newest first, with the reason or last error."""
    from aggregator.desk.entries import entry_json
    from aggregator.shapes import iso

    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        items = store.list_entries(state, feed=feed)
    if as_json:
        print_json([entry_json(e) for e in items])
        return
    print_table(
        ("id", "state", "title", "feed", "attempts", "next try", "reason / last error"),
        ((str(e.id), e.state, e.title, e.feed, str(e.attempts), iso(e.next_attempt_at) or "",
          e.reason or e.last_error or "") for e in items),
    )  # fmt: skip


@entries.command("retry")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.pass_context
def entries_retry(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Take entries again at the next pass (`poll`, or the daemon's next tick)."""
    settings = settings_of(ctx)
    words = words_of(settings)
    failures = 0
    with open_store(settings, upgrade=True) as store:
        for entry_id in ids:
            try:
                entry = store.retry_entry(entry_id, now=now_of(ctx))
            except AggregatorError as exc:
                click.echo(f"error: {exc}", err=True)
                failures += 1
                continue
            click.echo(words.gettext("queued entry %(id)s again: %(title)s", id=entry.id,
                                     title=entry.title))  # fmt: skip
    if failures:
        sys.exit(1)


@entries.command("translate")
@click.argument("entry_id", type=int)
@click.option(
    "--body-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
    help="The article's text (HTML), e.g. a licensed copy of a members-only post.",
)  # fmt: skip
@click.pass_context
def entries_translate(ctx: click.Context, entry_id: int, body_file: Path) -> None:
    """Translate an entry from a text you give (sanitized); the next pass drafts it."""
    from aggregator.desk.entries import translate_pasted_text

    settings = settings_of(ctx)
    html = body_file.read_text(encoding="utf-8")
    with open_store(settings, upgrade=True) as store:
        entry = translate_pasted_text(store, settings, entry_id, html, now=now_of(ctx))
    click.echo(
        words_of(settings).gettext(
            "entry %(id)s queued for translation from your text: %(title)s",
            id=entry.id,
            title=entry.title,
        )
    )
