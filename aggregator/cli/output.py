"""How commands print: for a person (rich tables), or JSON with ``--json``; and the options
that choose what a list shows.

rich is imported when a table or a progress bar is shown, not when a command loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

# --json, the same on every command that lists or shows something.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def state_option(name: str, states: Sequence[str], default: str) -> Callable[..., Any]:
    """``--status`` or ``--state``: which of a list's states to show."""
    return click.option(name, type=click.Choice(list(states)), default=default, show_default=True)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@cache
def console(*, stderr: bool = False) -> Console:
    """The terminal of stdout (or stderr), for tables and progress bars."""
    from rich.console import Console

    return Console(stderr=stderr)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    console().print(table)
