"""``aggregator users …``: the desk's accounts (add, passwd, disable, enable, list).

Who can run these commands can write the database, so they are the administrator's; the
commands hash passwords (scrypt) and never print or log one. A password is asked twice on
the terminal, or read from the first line of standard input with ``--password-stdin``
(for scripts and configuration management).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from aggregator.cli.base import main, now_of, open_store, settings_of
from aggregator.cli.output import json_option, print_json
from aggregator.errors import AccountError

if TYPE_CHECKING:
    from aggregator.store import Store, UserView

PASSWORD_STDIN_HELP = "Read the password from the first line of standard input."  # noqa: S105


@contextmanager
def _store(ctx: click.Context) -> Iterator[Store]:
    with open_store(settings_of(ctx), upgrade=True) as store:
        yield store


def _new_password(from_stdin: bool, name: str) -> str:
    from aggregator.web.auth import check_new_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt(
            f"New password for {name}", hide_input=True, confirmation_prompt=True
        )
    else:
        raise AccountError(
            "no terminal to ask the password on: pass it on standard input with --password-stdin"
        )
    check_new_password(password, "the password")
    return password


def _user_json(user: UserView) -> dict[str, Any]:
    from aggregator.shapes import iso

    return {
        "name": user.name,
        "role": user.role,
        "disabled": user.disabled_at is not None,
        "created_at": iso(user.created_at),
        "password_changed_at": iso(user.password_changed_at),
        "disabled_at": iso(user.disabled_at),
        "last_login_at": iso(user.last_login_at),
        "sessions": user.sessions,
    }


@main.group()
def users() -> None:
    """Accounts of the review desk: one per editor, named in the audit trail and credit."""


def _account_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A ``users`` command about one account, given as its NAME argument (then the
    command's own options)."""

    def register(function: Callable[..., None]) -> click.Command:
        command = click.argument("name")(click.pass_context(function))
        return users.command(name)(command)

    return register


@_account_command("add")
@click.option("--role", type=click.Choice(["editor", "admin"]), default="editor", show_default=True)
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN_HELP)
def users_add(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Add an account. The first one ends the shared-password mode of the desk."""
    from aggregator.web.auth import MAX_NAME_CHARACTERS, clean_name, hash_password

    cleaned = clean_name(name)
    if not cleaned or len(cleaned) > MAX_NAME_CHARACTERS:
        raise AccountError(
            f"a user name must have 1 to {MAX_NAME_CHARACTERS} characters, got {name[:40]!r}"
        )
    if any(not character.isprintable() for character in cleaned):
        raise AccountError(f"a user name must be printable text, got {cleaned!r}")
    with _store(ctx) as store:
        if store.find_user(cleaned) is not None:
            raise AccountError(f"a user named {cleaned!r} already exists")
        first = not store.has_users()
        password = _new_password(password_stdin, cleaned)
        user = store.add_user(cleaned, hash_password(password), role, now_of(ctx))
    click.echo(f"added {user.role} {user.name}")
    if first:
        click.echo(
            "the desk now logs in accounts only: the shared review password no longer opens it"
        )


@_account_command("passwd")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN_HELP)
def users_passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password; the user's open sessions end."""
    from aggregator.web.auth import hash_password

    with _store(ctx) as store:
        if store.find_user(name) is None:
            raise AccountError(f"no user named {name!r} (see `aggregator users list`)")
        password = _new_password(password_stdin, name)
        ended = store.set_password(name, hash_password(password), now_of(ctx))
    click.echo(f"password of {name} changed; {ended} session(s) ended")


@_account_command("disable")
def users_disable(ctx: click.Context, name: str) -> None:
    """Stop an account from logging in; its open sessions end. The audit trail keeps it."""
    with _store(ctx) as store:
        ended = store.disable_user(name, now_of(ctx))
    click.echo(f"disabled {name}; {ended} session(s) ended")


@_account_command("enable")
def users_enable(ctx: click.Context, name: str) -> None:
    """Let a disabled account log in again (with its password as it was)."""
    with _store(ctx) as store:
        user = store.enable_user(name)
    click.echo(f"enabled {user.name}")


@users.command("list")
@json_option
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """Accounts, their role, whether they are disabled, their last login and sessions."""
    with _store(ctx) as store:
        found = store.list_users()
    if as_json:
        print_json([_user_json(u) for u in found])
        return
    from aggregator.shapes import iso

    for user in found:
        state = "disabled" if user.disabled_at else f"{user.sessions} session(s)"
        last = iso(user.last_login_at) or "never"
        click.echo(f"{user.name}\t{user.role}\t{state}\tlast login {last}")
