"""How long the editor waits for the command line: whole processes, median of 5.

One real `aggregator poll` (a local upstream serving a feed of N articles and a local
LibreTranslate-API server) fills an SQLite database with N pending drafts; then each command
runs 5 times from the shell, beside `python -c pass` (the cost of starting any Python process
on this machine), and the medians are printed side by side.

    .venv/bin/python -m bench.cli [--drafts 1000] [--runs 5] [--keep DIRECTORY]

``--keep``: fill DIRECTORY's database once and measure on it again on later runs.

Goals: `aggregator --help` ≤ 0.25 s and `aggregator drafts list --json` ≤ 0.5 s on 1,000
drafts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.daemons import newsletter_feed
from tests.servers import LibreTranslateServer, UpstreamServer, config_toml

# The console script, as the editor runs it.
AGGREGATOR = [str(Path(sys.executable).parent / "aggregator")]
GOALS = {"aggregator --help": 0.25, "aggregator drafts list --json": 0.5}


def write_config(directory: Path, feed_url: str, translator: str) -> Path:
    config = directory / "config.toml"
    config.write_text(
        config_toml(
            translator,
            [{"url": feed_url, "name": "Weekly"}],
            database_url=f"sqlite:///{directory / 'aggregator.db'}",
        ),
        encoding="utf-8",
    )
    return config


def fill(directory: Path, drafts: int) -> Path:
    """A config whose database holds ``drafts`` pending drafts, made by the real pipeline."""
    with UpstreamServer() as upstream, LibreTranslateServer() as translator:
        feed_url = upstream.add("/rss", newsletter_feed(drafts))
        config = write_config(directory, feed_url, translator.url("/"))
        started = time.perf_counter()
        subprocess.run(
            [*AGGREGATOR, "--config", str(config), "poll"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"filled: {drafts} drafts in {time.perf_counter() - started:.1f} s (one poll)")
    return config


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drafts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        directory = args.keep or Path(tmp)
        config = directory / "config.toml"
        if not config.exists():
            directory.mkdir(parents=True, exist_ok=True)
            config = fill(directory, args.drafts)
        listed = subprocess.run(
            [*AGGREGATOR, "--config", str(config), "drafts", "list", "--json"],
            check=True,
            capture_output=True,
        )
        print(f"drafts list --json: {len(json.loads(listed.stdout))} drafts")
        with_config = [*AGGREGATOR, "--config", str(config)]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "aggregator --help": [*AGGREGATOR, "--help"],
            "aggregator drafts list --json": [*with_config, "drafts", "list", "--json"],
            "aggregator feeds list --json": [*with_config, "feeds", "list", "--json"],
        }
        print(f"\nmedian of {args.runs}, whole processes:")
        for label, command in commands.items():
            seconds = median_seconds(command, args.runs)
            goal = f"  (goal ≤ {GOALS[label]:.2f} s)" if label in GOALS else ""
            print(f"  {label:<32} {seconds:6.3f} s{goal}")


if __name__ == "__main__":
    main()
