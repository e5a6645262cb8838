"""Scale-out on PostgreSQL: the same migrations, claims that skip what others hold, and
several workers on one database that never draft an entry twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from conftest import WriteConfig
from daemons import (
    DaemonProcess,
    Database,
    NotifySocket,
    article_title,
    fetch_entries,
    newsletter_feed,
    operations_config,
    use_database,
    wait_for,
)
from servers import LibreTranslateServer, UpstreamServer
from sqlalchemy import create_engine, inspect

from aggregator.store import Store

WORKERS = 3
ENTRIES = 60


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run code in a separate Python process (another 'machine' sharing the database)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[2],
    )


def _schema(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        return {
            table: {column["name"] for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
        }
    finally:
        engine.dispose()


def test_processes_starting_together_upgrade_to_the_same_schema_as_sqlite(
    postgres_url: str, tmp_path: Path
) -> None:
    upgrade = "import sys; from aggregator.store import Store; Store(sys.argv[1]).upgrade()"
    _start_together(upgrade, [postgres_url], count=3)
    sqlite = f"sqlite:///{tmp_path / 'reference.db'}"
    Store(sqlite).upgrade()
    assert _schema(postgres_url) == _schema(sqlite)
    with Database(postgres_url) as database:
        assert database.scalar("SELECT count(*) FROM alembic_version") == 1


CLAIM = """
import json, sys
from datetime import UTC, datetime, timedelta
from aggregator.store import Store
store = Store(sys.argv[1])
claimed = store.claim_entries(datetime.now(UTC), timedelta(minutes=5), 10)
print(json.dumps([entry.id for entry in claimed]))
"""


def test_a_claim_skips_entries_another_process_has_locked_instead_of_waiting(
    write_config: WriteConfig, upstream: UpstreamServer, postgres_url: str
) -> None:
    feed_url = upstream.add("/rss", newsletter_feed(8))
    config = use_database(write_config([{"url": feed_url, "name": "Weekly"}]), postgres_url)
    fetch_entries(config)
    libpq = postgres_url.replace("+psycopg", "")
    with psycopg.connect(libpq) as other:  # another worker, in the middle of its claim
        locked = [
            row[0]
            for row in other.execute(
                "SELECT id FROM entries ORDER BY id LIMIT 3 FOR UPDATE"
            ).fetchall()
        ]
        result = _python(CLAIM, postgres_url)  # would block until the lock goes, if it waited
        assert result.returncode == 0, result.stderr
        claimed = json.loads(result.stdout)
        other.rollback()
    assert len(locked) == 3
    assert claimed and not set(claimed) & set(locked)
    assert len(claimed) == 5


def test_several_workers_on_one_database_never_draft_an_entry_twice(
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    postgres_url: str,
) -> None:
    libretranslate.latency = 0.05
    libretranslate.hang = True  # until all run: the first to start must not do it all
    feed_url = upstream.add("/rss", newsletter_feed(ENTRIES))
    config = use_database(
        write_config([{"url": feed_url, "name": "Weekly"}], extra=operations_config()),
        postgres_url,
    )
    database = Database(postgres_url)
    with database, NotifySocket() as notify:
        workers = [
            DaemonProcess(config, env=notify.env, name=f"worker-{n}") for n in range(WORKERS)
        ]
        try:
            for _ in workers:
                notify.wait_for("READY=1")
            wait_for(lambda: libretranslate.requests >= 4 * WORKERS, "every worker to translate")
            libretranslate.hang = False
            wait_for(lambda: database.drafts() == ENTRIES, "the workers to draft every entry")
            for worker in workers:
                assert worker.terminate() == 0
        finally:
            for worker in workers:
                worker.close()
        assert database.entries() == ENTRIES  # the feed polled by all: each entry stored once
        assert set(database.draft_events("drafted").values()) == {1}
        assert database.draft_events("redrafted") == {}
        assert database.claimed() == 0
        assert len(database.draft_events("drafted")) == ENTRIES
    texts = libretranslate.texts
    for number in range(1, ENTRIES + 1):
        title = article_title(number)
        assert sum(title in text for text in texts) == 1, f"{title} translated more than once"
    working = [w for w in workers if "backlog: " in w.log]
    assert len(working) == WORKERS, "the work was not shared between the workers"


def test_the_lease_of_a_vanished_worker_is_taken_over_after_it_ends(
    write_config: WriteConfig, upstream: UpstreamServer, postgres_url: str
) -> None:
    feed_url = upstream.add("/rss", newsletter_feed(3))
    config = use_database(write_config([{"url": feed_url, "name": "Weekly"}]), postgres_url)
    fetch_entries(config)
    result = _python(CLAIM, postgres_url)  # claims all three, then exits without a word
    assert json.loads(result.stdout) == [1, 2, 3]
    store = Store(postgres_url)
    try:
        now = datetime.now(UTC)
        lease = timedelta(minutes=5)
        assert store.claim_entries(now, lease, 10) == []  # its lease still runs
        after_the_lease = now + timedelta(minutes=6)
        assert [e.id for e in store.claim_entries(after_the_lease, lease, 10)] == [1, 2, 3]
    finally:
        store.close()


def test_workers_started_together_add_each_configured_feed_once(
    write_config: WriteConfig, postgres_url: str
) -> None:
    """Every process syncs config.toml's feeds as it starts; started at the same moment,
    they must neither fail on each other's inserts nor add a feed twice."""
    feeds = [{"url": f"http://127.0.0.1:9/feed-{n}.xml", "name": f"Feed {n}"} for n in range(20)]
    config = use_database(write_config(feeds), postgres_url)
    Store(postgres_url).upgrade()
    code = (
        "import sys\n"
        "from aggregator import config\n"
        "from aggregator.clock import utc_now\n"
        "from aggregator.store import Store\n"
        "import time\n"
        "settings = config.load(sys.argv[1])\n"
        "store = Store.from_settings(settings)\n"
        "store.ping()\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all at the same moment\n"
        "store.sync_feeds(settings.feeds, settings, utc_now())\n"
    )
    moment = str(time.time() + 3)
    _start_together(code, [str(config), moment], count=4)
    store = Store(postgres_url)
    try:
        names = sorted(f.name for f in store.feed_health())
    finally:
        store.close()
    assert names == sorted(f["name"] for f in feeds)


def _start_together(code: str, args: list[str], *, count: int) -> None:
    """``count`` Python processes running ``code`` with ``args`` at once; each must exit 0."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
