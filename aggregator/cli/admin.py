"""``db``, ``check-config`` and ``status``: what an operator runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from aggregator.cli.base import main, now_of, open_store, settings_of, words_of
from aggregator.languages import usage_account

if TYPE_CHECKING:
    from aggregator.config import Settings
    from aggregator.i18n import Messages
    from aggregator.store import Overview


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the database migrations (run automatically by run and poll)."""
    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        click.echo(f"database {store.safe_url} is up to date")


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def db_backup(ctx: click.Context, path: Path) -> None:
    """Copy the live SQLite database to PATH (a new file) while the daemon keeps running."""
    settings = settings_of(ctx)
    with open_store(settings) as store:
        result = store.backup(path)
    click.echo(f"backed up {store.safe_url} to {result.path} ({result.size} bytes, checked)")


@main.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the configuration file and say what it sets up."""
    from aggregator.web.auth import load_secrets

    settings = settings_of(ctx)
    # The review password and API tokens live outside the file; they are checked too
    # (a password shorter than 12 characters is refused).
    review = load_secrets(settings, session_key=False)
    click.echo(
        f"{settings.path}: ok — {len(settings.feeds)} feeds, engine {settings.translation.engine}, "
        f"{'/'.join(settings.translation.source_languages)} → "
        f"{settings.translation.target_language}"
    )
    reads = sum(1 for token in review.tokens if token.scope == "read")
    click.echo(
        f"review: shared password {'set' if review.password else 'not set'}, "
        f"{len(review.tokens)} API tokens ({reads} read, {len(review.tokens) - reads} write), "
        f"proxies trusted: {', '.join(settings.server.trusted_proxies) or 'none'}"
    )


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """What the daemon has done and what waits: feeds, entries, drafts."""
    from aggregator.desk import health

    settings = settings_of(ctx)
    with open_store(settings, upgrade=True) as store:
        store.sync_feeds(settings.feeds, settings, now_of(ctx))
        feeds_health = store.feed_health()
        backlog = store.backlog(now_of(ctx))
        counts = store.draft_counts()
        overview = store.overview(now_of(ctx))
        database = store.safe_url
        budget_paused = store.paused_by_budget()
    words = words_of(settings)
    failing = [f for f in feeds_health if f.status in ("error", "gone")]
    click.echo(
        words.gettext(
            "feeds:   %(feeds)s (%(failing)s)",
            feeds=words.ngettext("%(num)s feed", "%(num)s feeds", len(feeds_health)),
            failing=words.ngettext("%(num)s failing", "%(num)s failing", len(failing)),
        )
    )
    for f in feeds_health:
        click.echo(f"  {health.describe(f, now_of(ctx), words)}")
    click.echo(
        words.gettext(
            "entries: %(new)s, %(extracted)s (%(failing)s), %(drafted)s, %(skipped)s",
            new=words.ngettext(
                "%(num)s waiting for text", "%(num)s waiting for text", backlog.get("new", 0)
            ),
            extracted=words.ngettext(
                "%(num)s waiting for translation",
                "%(num)s waiting for translation",
                backlog.get("extracted", 0),
            ),
            failing=words.ngettext("%(num)s failing", "%(num)s failing", backlog.get("failing", 0)),
            drafted=words.ngettext("%(num)s drafted", "%(num)s drafted", backlog.get("drafted", 0)),
            skipped=words.ngettext("%(num)s skipped", "%(num)s skipped", backlog.get("skipped", 0)),
        )
    )
    if backlog.get("failing", 0) or backlog.get("skipped", 0):
        click.echo(
            words.gettext("         (see them: `aggregator entries list --state failing|skipped`)")
        )
    click.echo(
        words.gettext(
            "drafts:  %(pending)s, %(approved)s, %(rejected)s",
            pending=words.ngettext("%(num)s pending", "%(num)s pending", counts["pending"]),
            approved=words.ngettext("%(num)s approved", "%(num)s approved", counts["approved"]),
            rejected=words.ngettext("%(num)s rejected", "%(num)s rejected", counts["rejected"]),
        )
    )
    _print_work(overview, database, words)
    _print_budgets(settings, overview, *budget_paused, words=words)


def _print_budgets(
    settings: Settings, overview: Overview, paused: int, reason: str | None, *, words: Messages
) -> None:
    """Each engine's daily character budget, and whether translation is paused by it."""
    translation = settings.translation
    # Each language pair has its own budget, counted as "libre", "libre:es"…
    others = [lang for lang in settings.published_languages if lang != translation.target_language]
    for name in (translation.engine, *translation.fallback):
        budget = translation.engine_settings(name).daily_characters
        for account in (usage_account(name, lang) for lang in ("", *others)) if budget else ():
            spent = overview.engines_today.get(account)
            used = spent.characters if spent else 0
            click.echo(
                words.ngettext(
                    "budget:  %(engine)s: %(used)s of %(budget)s character spent today (UTC)",
                    "budget:  %(engine)s: %(used)s of %(budget)s characters spent today (UTC)",
                    used,
                    engine=account,
                    used=words.number(used),
                    budget=words.number(budget),
                )
            )
    for name, spend in overview.spend_today.items():
        click.echo(
            words.gettext(
                "tokens:  %(engine)s: %(prompt)s in, %(completion)s out today (UTC), cost %(cost)s",
                engine=name,
                prompt=words.number(spend.prompt_tokens),
                completion=words.number(spend.completion_tokens),
                cost=words.number(round(spend.cost, 4)),
            )
        )
    for spend in overview.feed_spend_today.values():
        line = words.gettext(
            "  %(feed)s: %(prompt)s in, %(completion)s out for its drafts of today (UTC)",
            feed=spend.feed,
            prompt=words.number(spend.prompt_tokens),
            completion=words.number(spend.completion_tokens),
        )
        if spend.cost:
            line += words.gettext(", cost %(cost)s", cost=words.amount(spend.cost))
        click.echo(line)
    if paused:
        click.echo(
            words.ngettext(
                "translation paused: %(reason)s (%(num)s entry waits)",
                "translation paused: %(reason)s (%(num)s entries wait)",
                paused,
                reason=reason,
            )
        )


def _print_work(overview: Overview, database: str, words: Messages) -> None:
    """Queues, claims and engine usage: is the daemon keeping up, is a worker gone?"""
    due, late = overview.due, overview.overdue_seconds
    click.echo(
        words.gettext(
            "due now: %(feeds)s, %(text)s, %(translation)s; most overdue %(late)s",
            feeds=words.ngettext("%(num)s feed", "%(num)s feeds", due.get("feeds", 0)),
            text=words.ngettext(
                "%(num)s entry for text", "%(num)s entries for text", due.get("text", 0)
            ),
            translation=words.ngettext(
                "%(num)s for translation", "%(num)s for translation", due.get("translation", 0)
            ),
            late=words.duration(max(late.values(), default=0.0)),
        )
    )
    click.echo(
        words.gettext(
            "claims:  %(held)s, %(expired)s (taken up again by any worker)",
            held=words.ngettext(
                "%(num)s entry in progress", "%(num)s entries in progress", overview.claims_held
            ),
            expired=words.ngettext(
                "%(num)s left by a stopped process",
                "%(num)s left by a stopped process",
                overview.claims_expired,
            ),
        )
    )
    for engine, totals in overview.engines_today.items():
        click.echo(
            words.gettext(
                "engine:  %(engine)s: %(characters)s in %(requests)s today (UTC)",
                engine=engine,
                characters=words.ngettext(
                    "%(num)s character", "%(num)s characters", totals.characters
                ),
                requests=words.ngettext("%(num)s request", "%(num)s requests", totals.requests),
            )
        )
    click.echo(words.gettext("database: %(url)s", url=database))
