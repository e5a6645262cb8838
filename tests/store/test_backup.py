"""Data safety: `aggregator db backup PATH` of a live database, and upgrades in place."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from conftest import WriteConfig, run_cli
from daemons import (
    DaemonProcess,
    Database,
    NotifySocket,
    newsletter_feed,
    operations_config,
    sqlite_url,
    use_database,
    wait_for,
)
from servers import LibreTranslateServer, UpstreamServer
from sqlalchemy import create_engine, text

from aggregator.store import MIGRATIONS, Store


def test_backup_while_a_worker_writes_is_a_consistent_standalone_copy(
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    tmp_path: Path,
) -> None:
    libretranslate.latency = 0.05
    feed_url = upstream.add("/rss", newsletter_feed(30))
    config = write_config([{"url": feed_url, "name": "Weekly"}], extra=operations_config())
    backup = tmp_path / "backups" / "aggregator-1.db"
    backup.parent.mkdir()
    live = Database(sqlite_url(config))
    with live, NotifySocket() as notify, DaemonProcess(config, env=notify.env) as worker:
        notify.wait_for("READY=1")
        wait_for(lambda: live.drafts() >= 5, "the worker to be drafting")
        libretranslate.hang = True  # translations in flight wait: the moment stays still
        at_backup = live.drafts()
        result = run_cli(config, "db", "backup", str(backup))
        assert f"to {backup}" in result.stdout
        libretranslate.hang = False
        wait_for(lambda: live.drafts() == 30, "the worker to finish")
        assert worker.terminate() == 0

    assert list(backup.parent.iterdir()) == [backup]  # no -wal or -shm file needed beside it
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        drafts = copy.execute("SELECT count(*) FROM drafts").fetchone()[0]
        drafted = copy.execute("SELECT count(*) FROM entries WHERE state = 'drafted'").fetchone()
        entries = copy.execute("SELECT count(*) FROM entries").fetchone()[0]
    # A snapshot of one moment, taken mid-work: every drafted entry has its draft.
    # (Translations answered just before the pause may still land: at most one per thread.)
    assert at_backup <= drafts <= at_backup + 4 < 30
    assert drafted == (drafts,)
    assert entries == 30

    # Restoring is putting the file in place: the program reads it as it was.
    restored = tmp_path / "restored" / "aggregator.db"
    restored.parent.mkdir()
    restored.write_bytes(backup.read_bytes())
    store = Store(f"sqlite:///{restored}")
    try:
        assert store.ping()
        assert len(store.list_drafts()) == drafts
    finally:
        store.close()


def test_backup_never_overwrites_a_file(write_config: WriteConfig, tmp_path: Path) -> None:
    config = write_config()
    store = Store(sqlite_url(config))
    store.upgrade()
    store.close()
    target = tmp_path / "precious.db"
    target.write_bytes(b"an earlier backup")
    result = run_cli(config, "db", "backup", str(target), check=False)
    assert result.returncode == 1
    assert f"error: {target} already exists" in result.stderr
    assert target.read_bytes() == b"an earlier backup"


def test_backup_of_postgresql_points_to_pg_dump(
    write_config: WriteConfig, postgres_url: str, tmp_path: Path
) -> None:
    config = use_database(write_config(), postgres_url)
    target = tmp_path / "dump"
    result = run_cli(config, "db", "backup", str(target), check=False)
    assert result.returncode == 1
    assert "pg_dump --format=custom" in result.stderr
    assert postgres_url.replace("+psycopg", "") in result.stderr
    assert not target.exists()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aggregator.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_upgrade_migrates_a_database_of_the_first_release_in_place(
    write_config: WriteConfig, database_url: str
) -> None:
    alembic = Config()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(alembic).get_current_head()
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            alembic.attributes["connection"] = connection
            command.upgrade(alembic, "0001")
        _insert_first_release_rows(engine)
    finally:
        engine.dispose()
    config = use_database(write_config(), database_url)

    assert "is up to date" in run_cli(config, "db", "upgrade").stdout
    with Database(database_url) as database:
        assert database.scalar("SELECT version_num FROM alembic_version") == head
        assert database.scalar("SELECT polls FROM feeds") == 0
        assert database.scalar("SELECT claimed_by FROM entries") is None
    store = Store(database_url)
    try:
        draft = store.get_draft(1)
    finally:
        store.close()
    assert (draft.title, draft.original_title, draft.feed) == ("Un titre", "A title", "Old")


def _insert_first_release_rows(engine: object) -> None:
    at = datetime(2025, 6, 2, 8, 0)
    with engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(
            text(
                "INSERT INTO feeds (id, config_url, url, name, slug, interval_seconds, status,"
                " error_count, created_at) VALUES (1, 'http://old.test/rss', "
                "'http://old.test/rss', 'Old', 'old', 1800, 'ok', 0, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO entries (id, feed_id, key, url, title, content_hash, state, attempts,"
                " created_at, updated_at) VALUES (1, 1, 'k', 'http://old.test/1', 'A title',"
                " 'h', 'drafted', 0, :at, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO drafts (id, entry_id, status, title, body_html, source_language,"
                " target_language, engine, characters, requests, warnings, version, created_at,"
                " updated_at) VALUES (1, 1, 'pending', 'Un titre', '<p>Bonjour</p>', 'en', 'fr',"
                " 'libre', 10, 1, :warnings, 1, :at, :at)"
            ),
            {"at": at, "warnings": json.dumps([])},
        )
