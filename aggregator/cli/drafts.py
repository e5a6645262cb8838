"""``aggregator drafts …``: the editor's review from the command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aggregator.cli.base import clock_of, main, open_store, reviewer, settings_of, words_of
from aggregator.cli.output import json_option, print_json, print_table, state_option
from aggregator.errors import AggregatorError
from aggregator.msgid import N_

if TYPE_CHECKING:
    from aggregator.store import DraftView


@main.group()
def drafts() -> None:
    """Review drafts: list, show, approve, reject, withdraw, edit, retranslate."""


@drafts.command("list")
@state_option("--status", ("pending", "approved", "rejected", "withdrawn", "all"), "pending")
@click.option("--language", default="", help='Only the drafts into this language ("es").')
@json_option
@click.pass_context
def drafts_list(ctx: click.Context, status: str, language: str, as_json: bool) -> None:
    """Drafts waiting for review (or of another status)."""
    from aggregator.models import DraftStatus
    from aggregator.shapes import draft_summary_json, iso

    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        items = store.draft_summaries(
            None if status == "all" else DraftStatus(status), language=language or None
        )
    if as_json:
        base_url, main = settings.server.base_url, settings.translation.target_language
        print_json([draft_summary_json(d, base_url, main_language=main) for d in items])
        return
    from aggregator.publishing.credit import source_name  # lxml: for the table only

    rows: list[tuple[str, ...]] = [
        (str(d.id), d.status.value, d.title, source_name(d), iso(d.created_at) or "",
         str(len(d.warnings)) if d.warnings else "", d.target_language) for d in items
    ]  # fmt: skip
    headers: tuple[str, ...] = ("id", "status", "title", "feed", "created", "warnings", "language")
    if len(settings.published_languages) == 1:  # one language: no column to read
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    print_table(headers, rows)


@drafts.command("show")
@click.argument("draft_id", type=int)
@json_option
@click.pass_context
def drafts_show(ctx: click.Context, draft_id: int, as_json: bool) -> None:
    """One draft in full: French title and body, and what it was made from."""
    from aggregator.publishing.credit import source_name
    from aggregator.shapes import draft_json

    settings = settings_of(ctx)
    if as_json:
        from aggregator.desk.service import Desk

        with open_store(settings, upgrade=True) as store:
            page = Desk(settings, store, now=clock_of(ctx)).page(draft_id)
        main = settings.translation.target_language
        print_json(draft_json(page, settings.server.base_url, main_language=main))
        return
    with open_store(settings, upgrade=True) as store:
        draft = store.get_draft(draft_id)
    words = words_of(settings)
    status = words.status_label(draft.status.value)
    click.echo(f"#{draft.id} [{status}] {draft.title}")
    click.echo(
        words.gettext(
            "original: %(title)s — %(author)s",
            title=draft.original_title,
            author=draft.author or words.gettext("unknown author"),
        )
    )
    click.echo(f"          {draft.original_url} ({source_name(draft)})")
    click.echo(
        words.gettext(
            "engine:   %(engine)s, %(characters)s, %(requests)s",
            engine=draft.engine,
            characters=words.ngettext("%(num)s character", "%(num)s characters", draft.characters),
            requests=words.ngettext("%(num)s request", "%(num)s requests", draft.requests),
        )
    )
    for warning in draft.warnings:
        click.echo(words.gettext("warning:  %(text)s", text=words.stored(warning)))
    click.echo()
    click.echo(draft.body_html)


IF_VERSION = click.option(
    "--if-version",
    "version",
    type=int,
    default=None,
    help="Act only if the draft is still at this version (as `show --json` printed it).",
)


def _each(
    ctx: click.Context, ids: Sequence[int], version: int | None, actor: str | None,
    action: str, verb: str,
) -> None:  # fmt: skip
    """``action`` of the desk (``ACTIONS``) on each draft; ``verb``: the msgid printed for
    each draft done (``%(id)s``, ``%(title)s``)."""
    from aggregator.desk.service import Desk, Editor

    if version is not None and len(ids) > 1:
        raise click.UsageError("--if-version applies to one draft at a time")
    settings = settings_of(ctx)
    words = words_of(settings)
    who = Editor(*reviewer(settings, actor))
    failures = 0
    with open_store(settings, upgrade=True) as store:
        desk = Desk(settings, store, now=clock_of(ctx))
        for draft_id in ids:
            try:
                draft = desk.act(who, draft_id, version, action)
            except AggregatorError as exc:
                click.echo(f"error: {exc}", err=True)
                failures += 1
                continue
            click.echo(words.gettext(verb, id=draft.id, title=draft.title))
    if failures:
        sys.exit(1)


def _review_command(action: str, summary: str, done: str, who: str = "Reviewer name.") -> None:
    """``aggregator drafts ACTION ID…``: the desk's ``action`` on each draft; ``done``: the
    msgid printed for each draft done; ``who``: the help of ``--as``."""

    @drafts.command(action, help=summary)
    @click.argument("ids", type=int, nargs=-1, required=True)
    @click.option("--as", "actor", default=None, help=who)
    @IF_VERSION
    @click.pass_context
    def command(
        ctx: click.Context, ids: tuple[int, ...], actor: str | None, version: int | None
    ) -> None:
        _each(ctx, ids, version, actor, action, done)


_review_command(
    "approve", "Approve drafts: they appear in the published feeds.",
    N_("approved draft %(id)s: %(title)s"),
    "Reviewer named in the credit line (default: $AGGREGATOR_REVIEWER, else nobody).",
)  # fmt: skip
_review_command(
    "reject", "Reject drafts: they are never published, and their entries never come back.",
    N_("rejected draft %(id)s: %(title)s"),
)  # fmt: skip
_review_command(
    "withdraw", "Withdraw published drafts: they leave the feeds; their page answers 410 Gone.",
    N_("withdrew draft %(id)s: %(title)s"), "Reviewer name (for the audit trail).",
)  # fmt: skip
_review_command(
    "retranslate", "Send drafts back to translation (done by the next poll or backlog tick).",
    N_("queued for retranslation draft %(id)s: %(title)s"),
)  # fmt: skip


@drafts.command("edit")
@click.argument("draft_id", type=int)
@click.option("--title", default=None, help="New French title.")
@click.option(
    "--body-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="File holding the new French body (HTML).",
)  # fmt: skip
@click.option(
    "--block", "blocks", nargs=2, multiple=True,
    type=(int, click.Path(exists=True, dir_okay=False, path_type=Path)),
    metavar="INDEX FILE",
    help="Replace one block (INDEX from 0, as `show --json` lists them) with FILE's HTML.",
)  # fmt: skip
@click.option("--as", "actor", default=None, help="Reviewer name.")
@IF_VERSION
@click.pass_context
def drafts_edit(
    ctx: click.Context, draft_id: int, title: str | None, body_file: Path | None,
    blocks: tuple[tuple[int, Path], ...], actor: str | None, version: int | None,
) -> None:  # fmt: skip
    """Edit a draft's title, body or blocks; with no option, opens $EDITOR."""
    from aggregator.desk.service import Desk, Editor

    settings = settings_of(ctx)
    who = Editor(*reviewer(settings, actor))
    with open_store(settings, upgrade=True) as store:
        desk = Desk(settings, store, now=clock_of(ctx))
        body = body_file.read_text(encoding="utf-8") if body_file else None
        new_blocks = [(index, path.read_text(encoding="utf-8")) for index, path in blocks]
        if title is None and body is None and not new_blocks:
            title, body = _edit_in_editor(store.get_draft(draft_id))
        # The desk's checks and version rule, as for the review pages and the API.
        updated = desk.edit(who, draft_id, version, title=title, body_html=body, blocks=new_blocks)
    message = N_("edited draft %(id)s: %(title)s")
    click.echo(words_of(settings).gettext(message, id=updated.id, title=updated.title))


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
