"""Running ``aggregator run|worker|serve`` as systemd would, and looking at what it did.

- ``DaemonProcess``: the daemon as a subprocess, its output in a log file, stopped with
  SIGTERM (or killed with SIGKILL) by the test.
- ``NotifySocket``: a datagram socket the test owns, given to the daemon as NOTIFY_SOCKET.
- ``newsletter_feed``: an RSS feed of N English articles, each complete in the feed.
- ``Database``: the few queries the tests check outcomes with (SQLite or PostgreSQL).
"""

from __future__ import annotations

import html
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import create_engine, text

# Longest a test waits for something the daemon does (a deadline, not a measurement).
WAIT_SECONDS = 45.0
# SIGTERM must end the daemon within this many seconds (systemd's stop timeout is longer).
STOP_SECONDS = 10.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll until ``condition()`` is truthy; its value, or an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)  # polling interval, not an assertion


class DaemonProcess:
    """``python -m aggregator --config CONFIG COMMAND`` with its output in ``<name>.log``."""

    def __init__(
        self,
        config: Path,
        command: str = "worker",
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        stderr_path: Path | None = None,
    ) -> None:
        self.config = config
        self.command = command
        self.log_path = stderr_path or config.parent / f"{name or command}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
        environment.pop("WATCHDOG_USEC", None)
        environment.pop("JOURNAL_STREAM", None)
        environment.update(env or {})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "--config", str(config), command],
                cwd=config.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def terminate(self) -> int:
        """SIGTERM, then the exit status; fails the test if it takes longer than allowed."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"`aggregator {self.command}` did not exit within {STOP_SECONDS:.0f} s of "
                f"SIGTERM:\n{self.log}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, like a power cut for the process."""
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class NotifySocket:
    """The socket systemd would own: the daemon sends READY=1, WATCHDOG=1… to it.

    A thread reads every datagram as it arrives (as systemd does), so a sender is never
    blocked by a full queue; ``next`` hands them over in order.
    """

    def __init__(self) -> None:
        # A short path: AF_UNIX addresses are limited to 108 bytes.
        self._directory = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
        self.path = os.path.join(self._directory, "s")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.settimeout(0.1)  # lets the reader notice close()
        self._closed = threading.Event()
        self._inbox: queue.Queue[str] = queue.Queue()
        self.received: list[str] = []
        self._reader = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                message = self._socket.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self._inbox.put(message.decode())

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.path}

    def next(self, timeout: float = WAIT_SECONDS) -> str:
        """The next datagram (``KEY=value`` lines), or AssertionError after ``timeout``."""
        try:
            message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no sd_notify datagram within {timeout:.0f} s; so far: {self.received}"
            ) from None
        self.received.append(message)
        return message

    def wait_for(self, line: str, timeout: float = WAIT_SECONDS) -> list[str]:
        """Read datagrams until one holds ``line``; every datagram read, that one last."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(message)
            if line in message.splitlines():
                return seen

    def close(self) -> None:
        self._closed.set()
        self._reader.join()
        self._socket.close()
        Path(self.path).unlink(missing_ok=True)
        os.rmdir(self._directory)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------- a generated newsletter

_PARAGRAPHS = (
    "This week we look at how people build software for the news, and why the best tools "
    "are often the most simple. The team behind the project has been working on it for "
    "years, and they think that every reader should be able to use it without help.",
    "There is a difference between a good idea and a good product. Many companies say they "
    "want to help their users, but only a few of them take the time to listen. Here is what "
    "we learned when we asked our readers what they want from a newsletter.",
    "Finally, a word about the community: thousands of developers have joined the project "
    "since the last release, and their work makes it better every day. We want to thank "
    "them all, and we hope you will enjoy this new version as much as we do.",
    "Next week we will talk about the cost of running a small website, and about the "
    "libraries that make it easier. If you have a question for us, please write to us: we "
    "read every letter, and we will share the best ones with all our readers.",
)


def article_title(number: int, prefix: str = "Report") -> str:
    return f"{prefix} {number:04d} on the state of newsletters"


def newsletter_feed(count: int, *, prefix: str = "Report", site: str = "http://news.test") -> str:
    """RSS with ``count`` English articles, each whole in content:encoded (no page fetch)."""
    items = []
    for number in range(1, count + 1):
        title = article_title(number, prefix)
        # Every article its own text, as new posts have: nothing comes from translation memory.
        body = "".join(
            f"<p>{html.escape(text)} This is part {part} of issue {number}.</p>"
            for part, text in enumerate(_PARAGRAPHS, start=1)
        )
        items.append(
            f"<item><title>{html.escape(title)}</title>"
            f"<link>{site}/{prefix.lower()}/{number}</link>"
            f"<guid isPermaLink='false'>{prefix.lower()}-{number}</guid>"
            f"<pubDate>Mon, 02 Jun 2025 {number // 60 % 24:02d}:{number % 60:02d}:00 GMT</pubDate>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{prefix} weekly</title><link>{site}/</link>"
        f"<description>Generated</description>{''.join(items)}</channel></rss>"
    )


# ---------------------------------------------------------------- outcomes in the database


class Database:
    """Read-only checks on the aggregator's tables, straight from the database."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def scalar(self, query: str, **params: object) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(query), params).scalar()

    def rows(self, query: str, **params: object) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(query), params).all())

    def drafts(self) -> int:
        return int(self.scalar("SELECT count(*) FROM drafts") or 0)

    def entries(self, state: str | None = None) -> int:
        if state is None:
            return int(self.scalar("SELECT count(*) FROM entries") or 0)
        return int(self.scalar("SELECT count(*) FROM entries WHERE state = :s", s=state) or 0)

    def claimed(self) -> int:
        """Entries still marked as taken by some process."""
        return int(
            self.scalar(
                "SELECT count(*) FROM entries WHERE claimed_by IS NOT NULL "
                "OR locked_until IS NOT NULL"
            )
            or 0
        )

    def draft_events(self, action: str) -> dict[int, int]:
        """Per draft id, how many times the pipeline recorded ``action`` for it."""
        rows = self.rows(
            "SELECT draft_id, count(*) FROM draft_events WHERE action = :a GROUP BY draft_id",
            a=action,
        )
        return {int(draft_id): int(n) for draft_id, n in rows}

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sqlite_url(config: Path) -> str:
    return f"sqlite:///{config.parent / 'aggregator.db'}"


def operations_config(
    *, lease: str = "5m", backlog_interval: str = "1s", concurrency: int = 4
) -> str:
    """TOML for write_config(extra=…): short ticks for tests, the text log format."""
    return "\n".join(
        [
            "[schedule]",
            f'lease = "{lease}"',
            f'backlog_interval = "{backlog_interval}"',
            f"entry_concurrency = {concurrency}",
            "",
            "[log]",
            'format = "text"',
        ]
    )


def use_database(config: Path, url: str) -> Path:
    """Point a config written by write_config at another database (PostgreSQL)."""
    text_before = config.read_text(encoding="utf-8")
    sqlite_line = 'url = "sqlite:///aggregator.db"'
    assert sqlite_line in text_before
    config.write_text(text_before.replace(sqlite_line, f'url = "{url}"'), encoding="utf-8")
    return config


def fetch_entries(config: Path) -> None:
    """Poll every feed of the config once and store its entries (`poll --fetch-only`),
    in this process: quicker than starting one, and still another process than the daemon's.
    """
    from aggregator import config as config_module
    from aggregator.clock import utc_now
    from aggregator.pipeline import Services
    from aggregator.polling.refresh import poll_feeds
    from aggregator.store import Store

    settings = config_module.load(config)
    store = Store.from_settings(settings)
    try:
        store.upgrade()
        store.sync_feeds(settings.feeds, settings, utc_now())
        services = Services.build(settings, store)
        try:
            report = poll_feeds(services, force=True)
        finally:
            services.close()
    finally:
        store.close()
    assert not report.errors, report.errors
