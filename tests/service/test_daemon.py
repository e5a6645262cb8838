"""The daemon as an operator runs it: stop, reload, several workers, logs for journald."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path

from conftest import WriteConfig, free_port, run_cli
from daemons import (
    DaemonProcess,
    Database,
    NotifySocket,
    article_title,
    fetch_entries,
    newsletter_feed,
    operations_config,
    sqlite_url,
    wait_for,
)
from servers import LibreTranslateServer, UpstreamServer

from aggregator.service.daemon import JournalFormatter
from aggregator.store import Store


def test_sigterm_while_a_translation_hangs_exits_0_and_releases_the_work(
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
) -> None:
    feed_url = upstream.add("/rss", newsletter_feed(6))
    # The lease is long: only the release on SIGTERM can free the entries early.
    config = write_config(
        [{"url": feed_url, "name": "Weekly"}], extra=operations_config(lease="10m")
    )
    libretranslate.hang = True  # every translation waits, past the engine's 30 s deadline
    database = Database(sqlite_url(config))
    with database, DaemonProcess(config, "run") as daemon:
        wait_for(lambda: libretranslate.requests >= 4, "translations to be under way")
        held = database.claimed()
        assert held >= 4
        assert daemon.terminate() == 0  # within 10 s, although the translations still hang
        assert database.claimed() == 0
        assert database.drafts() == 0
        assert f"released {held} in-flight entries" in daemon.log

        libretranslate.hang = False
        with DaemonProcess(config, "worker") as worker:
            wait_for(lambda: database.drafts() == 6, "the released entries to be drafted")
            assert worker.terminate() == 0
        assert database.draft_events("redrafted") == {}


def test_sighup_reloads_feeds_added_removed_and_renamed_without_restarting(
    write_config: WriteConfig, upstream: UpstreamServer, tmp_path: Path
) -> None:
    first = upstream.add("/first", newsletter_feed(2, prefix="First"))
    gone = upstream.add("/gone", newsletter_feed(1, prefix="Gone"))
    added = upstream.add("/added", newsletter_feed(2, prefix="Added"))
    feeds = [{"url": first, "name": "First"}, {"url": gone, "name": "Gone"}]
    config = write_config(feeds, extra=operations_config())
    database = Database(sqlite_url(config))
    with (
        database,
        NotifySocket() as notify,
        DaemonProcess(config, "worker", env=notify.env) as worker,
    ):
        notify.wait_for("READY=1")
        wait_for(lambda: database.drafts() == 3, "the first feeds to be drafted")

        config = write_config(
            [
                {"url": first, "name": "First, renamed", "interval": "2h"},
                {"url": added, "name": "Added"},
            ],
            extra=operations_config(),
        )
        worker.signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        # The added feed is polled at once, not at the next 30 s tick, and drafted.
        wait_for(lambda: database.drafts() == 5, "the added feed's entries to be drafted")
        store = Store(sqlite_url(config))
        try:
            health = {feed.url: feed for feed in store.feed_health()}
        finally:
            store.close()
        assert set(health) == {first, added}  # the removed one is no longer listed
        assert health[first].name == "First, renamed"
        assert database.scalar("SELECT status FROM feeds WHERE url = :u", u=gone) == "removed"
        assert database.scalar("SELECT interval_seconds FROM feeds WHERE url = :u", u=first) == (
            7200
        )

        config.write_text("[[feeds]\nbroken", encoding="utf-8")
        worker.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in worker.log, "the broken config to be refused")
        assert worker.alive()
        assert worker.terminate() == 0
    assert "configuration reloaded: 2 feeds (1 added, 1 removed)" in worker.log


def test_two_workers_on_one_sqlite_database_translate_each_entry_once(
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
) -> None:
    libretranslate.latency = 0.05
    libretranslate.hang = True  # until both run: the first to start must not do it all
    feed_url = upstream.add("/rss", newsletter_feed(24))
    config = write_config([{"url": feed_url, "name": "Weekly"}], extra=operations_config())
    database = Database(sqlite_url(config))
    with (
        database,
        NotifySocket() as notify,
        DaemonProcess(config, env=notify.env, name="a") as a,
        DaemonProcess(config, env=notify.env, name="b") as b,
    ):
        # Both started on a new database at once: both upgraded it, one after the other.
        notify.wait_for("READY=1")
        notify.wait_for("READY=1")
        wait_for(lambda: libretranslate.requests >= 8, "both workers to be translating")
        libretranslate.hang = False
        wait_for(lambda: database.drafts() == 24, "both workers to draft every entry")
        assert a.terminate() == 0
        assert b.terminate() == 0
    texts = libretranslate.texts
    for number in range(1, 25):
        title = article_title(number)
        assert sum(title in text for text in texts) == 1, f"{title} translated more than once"
    assert set(database.draft_events("drafted").values()) == {1}
    assert "backlog: " in a.log and "backlog: " in b.log, "one worker did all the work"


def test_logs_are_single_prioritized_lines_when_stderr_is_the_journal(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/rss"
    config = write_config([{"url": dead, "name": "Unreachable"}])  # [log] format = "auto"
    log_path = tmp_path / "journal.log"
    log_path.touch()
    stat = os.stat(log_path)
    # What systemd sets when it connects stderr to the journal: that stream's device:inode.
    env = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
    with DaemonProcess(config, "worker", env=env, stderr_path=log_path) as worker:
        wait_for(lambda: "Unreachable" in worker.log, "the failed poll to be logged")
        assert worker.terminate() == 0
    lines = worker.log.splitlines()
    assert lines and all(re.match(r"<[0-7]>level=\w+ logger=[\w.]+ msg=", line) for line in lines)
    failure = next(line for line in lines if "Unreachable" in line)
    assert failure.startswith("<4>level=warning logger=aggregator.polling.refresh msg=")
    assert any(
        line.startswith("<6>level=info logger=aggregator.service.daemon msg=") for line in lines
    )


def test_journal_formatter_keeps_a_traceback_on_one_line() -> None:
    try:
        raise ValueError('bad "value"\nsecond line')
    except ValueError:
        record = logging.LogRecord(
            "aggregator.pipeline", logging.ERROR, __file__, 1, "entry %s failed", (7,),
            sys.exc_info(),
        )  # fmt: skip
    line = JournalFormatter().format(record)
    assert "\n" not in line
    assert line.startswith('<3>level=error logger=aggregator.pipeline msg="entry 7 failed" exc="')
    assert 'ValueError: bad \\"value\\"\\nsecond line' in line


def test_status_tells_what_waits_and_what_is_claimed(
    write_config: WriteConfig, upstream: UpstreamServer
) -> None:
    feed_url = upstream.add("/rss", newsletter_feed(3))
    config = write_config([{"url": feed_url, "name": "Weekly"}])
    fetch_entries(config)
    status = run_cli(config, "status").stdout
    # The editor's language: French (the target language's catalogue), with its plurals.
    assert "à faire :   0 flux, 3 entrées à extraire, 0 à traduire" in status
    assert "en cours :  0 entrée en cours, 0 laissée par un processus arrêté" in status
    assert f"base :      sqlite:///{config.parent.resolve() / 'aggregator.db'}" in status


def test_operations_settings_are_checked_with_the_key_named(tmp_path: Path) -> None:
    from aggregator import config as config_module

    config = tmp_path / "config.toml"
    for table, problem in [
        ('[log]\nformat = "json"', "'log.format' must be one of auto, journal, text"),
        ('[log]\nlevel = "loud"', "'log.level' must be one of debug, info, warning, error"),
        ('[schedule]\nshutdown_grace = "30s"', "'schedule.shutdown_grace' must be at most 8s"),
        ("[schedule]\nentry_concurrency = 0", "'schedule.entry_concurrency' must be at least 1"),
        ('[schedule]\nlease = "soon"', "'schedule.lease': expected a duration"),
    ]:
        config.write_text(table + "\n", encoding="utf-8")
        try:
            config_module.load(config)
        except config_module.ConfigError as error:
            assert problem in str(error) and str(config) in str(error)
        else:
            raise AssertionError(f"{table!r} was accepted")
