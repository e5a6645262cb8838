"""Command line: argument parsing and output only; each module holds one group of commands.

``main`` is the ``aggregator`` entry point. Importing this package registers every command;
each command imports what it needs when it runs, so ``aggregator --help`` and the review
commands do not pay for the pipeline or the web stack.
"""

from __future__ import annotations

from aggregator.cli import admin, daemon, drafts, entries, feeds, users
from aggregator.cli.base import main

__all__ = ["admin", "daemon", "drafts", "entries", "feeds", "main", "users"]
