"""``aggregator drafts …``: the editor's review from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from aggregator.cli.base import (
    main,
    open_store,
    out,
    print_json,
    reviewer,
    settings_of,
    words_of,
)
from aggregator.clock import utc_now
from aggregator.desk.compare import clean_body, clean_title
from aggregator.errors import AggregatorError
from aggregator.i18n import N_
from aggregator.models import DraftStatus
from aggregator.publishing.publish import credit_html, source_name
from aggregator.shapes import edits_json, iso
from aggregator.store import DraftView, Store
from aggregator.untrusted import plain_text


@main.group()
def drafts() -> None:
    """Review drafts: list, show, approve, reject, withdraw, edit, retranslate."""


def _draft_summary(d: DraftView) -> dict[str, Any]:
    return {
        "id": d.id,
        "status": d.status.value,
        "title": d.title,
        "original_title": d.original_title,
        "original_url": d.original_url,
        "author": d.author,
        "feed": d.feed,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "warnings": list(d.warnings),
    }


def _draft_detail(d: DraftView) -> dict[str, Any]:
    return {
        **_draft_summary(d),
        "body_html": d.body_html,
        "credit_html": credit_html(d),
        "published_at": iso(d.published_at),
        "approved_at": iso(d.approved_at),
        "reviewed_by": d.reviewed_by,
        "engine": d.engine,
        "source_language": d.source_language,
        "target_language": d.target_language,
        "characters": d.characters,
        "requests": d.requests,
        "version": d.version,
        "published": d.published,
        "withdrawn_at": iso(d.withdrawn_at),
        **edits_json(d),
    }


@drafts.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "withdrawn", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def drafts_list(ctx: click.Context, status: str, as_json: bool) -> None:
    """Drafts waiting for review (or of another status)."""
    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        items = store.list_drafts(None if status == "all" else DraftStatus(status))
    if as_json:
        print_json([_draft_summary(d) for d in items])
        return
    table = Table("id", "status", "title", "feed", "created", "warnings")
    for d in items:
        table.add_row(
            str(d.id), d.status.value, d.title, source_name(d), iso(d.created_at) or "",
            str(len(d.warnings)) if d.warnings else "",
        )  # fmt: skip
    out.print(table)


@drafts.command("show")
@click.argument("draft_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def drafts_show(ctx: click.Context, draft_id: int, as_json: bool) -> None:
    """One draft in full: French title and body, and what it was made from."""
    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        draft = store.get_draft(draft_id)
    if as_json:
        print_json(_draft_detail(draft))
        return
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


def _each(
    ctx: click.Context, ids: Sequence[int], action: Callable[[Store, int], DraftView], verb: str
) -> None:
    """``verb``: the msgid of what is printed for each draft done (``%(id)s``, ``%(title)s``)."""
    settings = settings_of(ctx)
    words = words_of(settings)
    failures = 0
    with open_store(settings, upgrade=True) as store:
        for draft_id in ids:
            try:
                draft = action(store, draft_id)
            except AggregatorError as exc:
                click.echo(f"error: {exc}", err=True)
                failures += 1
                continue
            click.echo(words.gettext(verb, id=draft.id, title=draft.title))
    if failures:
        sys.exit(1)


@drafts.command("approve")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option(
    "--as",
    "actor",
    default=None,
    help="Reviewer named in the credit line (default: $AGGREGATOR_REVIEWER, else nobody).",
)
@click.pass_context
def drafts_approve(ctx: click.Context, ids: tuple[int, ...], actor: str | None) -> None:
    """Approve drafts: they appear in the published feeds."""
    who, named = reviewer(settings_of(ctx), actor)
    _each(
        ctx, ids, lambda s, i: s.approve(i, actor=who, now=utc_now(), named=named),
        N_("approved draft %(id)s: %(title)s"),
    )  # fmt: skip


@drafts.command("reject")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--as", "actor", default=None, help="Reviewer name.")
@click.pass_context
def drafts_reject(ctx: click.Context, ids: tuple[int, ...], actor: str | None) -> None:
    """Reject drafts: they are never published, and their entries never come back."""
    who, named = reviewer(settings_of(ctx), actor)
    _each(
        ctx, ids, lambda s, i: s.reject(i, actor=who, now=utc_now(), named=named),
        N_("rejected draft %(id)s: %(title)s"),
    )  # fmt: skip


@drafts.command("withdraw")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--as", "actor", default=None, help="Reviewer name (for the audit trail).")
@click.pass_context
def drafts_withdraw(ctx: click.Context, ids: tuple[int, ...], actor: str | None) -> None:
    """Withdraw published drafts: they leave the feeds; their page answers 410 Gone."""
    who, _ = reviewer(settings_of(ctx), actor)
    _each(
        ctx, ids, lambda s, i: s.withdraw(i, actor=who, now=utc_now()),
        N_("withdrew draft %(id)s: %(title)s"),
    )  # fmt: skip


@drafts.command("retranslate")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--as", "actor", default=None, help="Reviewer name.")
@click.pass_context
def drafts_retranslate(ctx: click.Context, ids: tuple[int, ...], actor: str | None) -> None:
    """Send drafts back to translation (done by the next poll or backlog tick)."""
    who, _ = reviewer(settings_of(ctx), actor)
    _each(
        ctx, ids, lambda s, i: s.request_retranslation(i, actor=who, now=utc_now()),
        N_("queued for retranslation draft %(id)s: %(title)s"),
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
    settings = settings_of(ctx)
    who, _ = reviewer(settings, actor)
    with open_store(settings, upgrade=True) as store:
        draft = store.get_draft(draft_id)
        body = body_file.read_text(encoding="utf-8") if body_file else None
        if title is None and body is None:
            title, body = _edit_in_editor(draft)
        # The desk's checks, so that the same edit gets the same answer through every door.
        title = clean_title(plain_text(title)) if title is not None else None
        body = clean_body(body) if body is not None else None
        updated = store.edit(
            draft_id, actor=who, now=utc_now(), title=title, body_html=body,
            confirm=("title",) if title is not None else (),
        )  # fmt: skip
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
