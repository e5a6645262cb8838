"""The ``aggregator`` group and what its commands share: config, store, clock, reviewer.

Commands print for a person, or JSON with ``--json``; an AggregatorError becomes one line
on stderr and exit status 1. Only click is imported here: the store, the config's parser, the
catalogues and rich load when a command asks for them, so ``aggregator --help`` starts as
fast as Python does.
"""

from __future__ import annotations

import getpass
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aggregator import __version__
from aggregator.clock import utc_now
from aggregator.errors import AggregatorError, UnknownReviewerError

if TYPE_CHECKING:
    from aggregator.config import Settings
    from aggregator.i18n import Messages
    from aggregator.store import Store

# Each top-level command and the module that defines it: a command's module is imported
# only when that command runs or its help is shown.
COMMAND_MODULES = {
    "check-config": "admin",
    "db": "admin",
    "drafts": "drafts",
    "entries": "entries",
    "feeds": "feeds",
    "poll": "daemon",
    "run": "daemon",
    "serve": "daemon",
    "status": "admin",
    "users": "users",
    "worker": "daemon",
}


class AggregatorGroup(click.Group):
    """Loads each command's module on first use (COMMAND_MODULES), and turns every
    AggregatorError into one readable line and exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            # The module registers its commands on ``main`` as it is imported.
            importlib.import_module(f"aggregator.cli.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)

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
    invocation = ctx.obj if isinstance(ctx.obj, Invocation) else Invocation()
    invocation.config_path = config_path
    ctx.obj = invocation


@dataclass
class Invocation:
    """What the commands of one run share: the config file named, and the clock (a caller
    may pass its own as ``obj``, as the tests do)."""

    config_path: Path | None = None
    clock: Callable[[], datetime] = utc_now


def clock_of(ctx: click.Context) -> Callable[[], datetime]:
    invocation = ctx.find_root().obj
    return invocation.clock if isinstance(invocation, Invocation) else utc_now


def now_of(ctx: click.Context) -> datetime:
    return clock_of(ctx)()


def config_path_of(ctx: click.Context) -> Path | None:
    """The file given with --config, if any (else $AGGREGATOR_CONFIG or ./config.toml)."""
    invocation = ctx.find_root().obj
    return invocation.config_path if isinstance(invocation, Invocation) else None


def settings_of(ctx: click.Context) -> Settings:
    from aggregator import config as config_module

    return config_module.load(config_path_of(ctx))


def words_of(settings: Settings) -> Messages:
    """What an editor reads, in the desk's language (``[review] language``)."""
    from aggregator.i18n import messages, ui_language

    return messages(ui_language(settings.review.language, settings.translation.target_language))


@contextmanager
def open_store(settings: Settings, *, upgrade: bool = False) -> Iterator[Store]:
    from aggregator.store import Store

    store = Store.from_settings(settings)
    try:
        if upgrade:
            store.upgrade()
        yield store
    finally:
        store.close()


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
