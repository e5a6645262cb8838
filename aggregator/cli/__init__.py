"""Command line: argument parsing and output only; each module holds one group of commands.

``main`` is the ``aggregator`` entry point. A command's module is imported when that command
runs (``base.COMMAND_MODULES``), and each command imports what it needs inside its function,
so ``aggregator --help`` and the review commands do not pay for the pipeline or the web stack.
"""

from __future__ import annotations

from aggregator.cli.base import main

__all__ = ["main"]
