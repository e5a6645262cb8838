"""The ``aggregator`` group and what its commands share: config, store, clock, output.

Commands print for a person, or JSON with ``--json``; an AggregatorError becomes one line
on stderr and exit status 1. Heavy modules (the pipeline, trafilatura, the web stack) are
imported by the commands that use them, not here.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from aggregator import __version__
from aggregator import config as config_module
from aggregator.config import Settings
from aggregator.errors import AggregatorError, UnknownReviewerError
from aggregator.i18n import Messages, messages, ui_language
from aggregator.store import Store

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


def settings_of(ctx: click.Context) -> Settings:
    return config_module.load(ctx.find_root().obj)


def words_of(settings: Settings) -> Messages:
    """What an editor reads, in the desk's language (``[review] language``)."""
    return messages(ui_language(settings.review.language, settings.translation.target_language))


@contextmanager
def open_store(settings: Settings, *, upgrade: bool = False) -> Iterator[Store]:
    store = Store.from_settings(settings)
    try:
        if upgrade:
            store.upgrade()
        yield store
    finally:
        store.close()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def reviewer(settings: Settings, given: str | None) -> tuple[str, bool]:
    """(actor for the audit trail, whether the credit line may name them).

    The reviewer is ``--as``, else ``$AGGREGATOR_REVIEWER``, checked against ``[review]
    reviewers`` as the desk's login is. With neither, the audit trail still says who ran the
    command, but the published credit names nobody: a Unix login ("root") is not a byline.
    """
    from aggregator.web.auth import MAX_NAME_CHARACTERS

    name = " ".join((given or os.environ.get("AGGREGATOR_REVIEWER") or "").split())
    if not name:
        try:
            login = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
            login = str(os.getuid())
        return f"cli (user {login})", False
    if len(name) > MAX_NAME_CHARACTERS:
        raise UnknownReviewerError(
            f"reviewer name is longer than {MAX_NAME_CHARACTERS} characters: {name[:40]!r}…"
        )
    allowed = settings.review.reviewers
    if allowed and name not in allowed:
        raise UnknownReviewerError(
            f"reviewer {name!r} is not in [review] reviewers of {settings.path} "
            f"({', '.join(allowed)}); nothing was done"
        )
    return name, True
