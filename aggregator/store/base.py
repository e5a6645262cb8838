"""The database handle: engine, sessions, migrations, health, backups."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from aggregator.errors import NotFoundError, StorageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from sqlalchemy.dialects import postgresql, sqlite

_View = TypeVar("_View", bound="DataclassInstance")
# A query that filters are added to and that keeps its type (the columns it selects).
AnySelect = TypeVar("AnySelect", bound=Select[Any])


def view_of(view: type[_View], row: object, **given: Any) -> _View:
    """A view (a frozen dataclass) of a row: each field read from the row's attribute of the
    same name, unless ``given``; the view's fields name what leaves the store."""
    read = {f.name: getattr(row, f.name) for f in dataclasses.fields(view) if f.name not in given}
    return view(**read, **given)


def categories_json(categories: tuple[str, ...]) -> str | None:
    """An entry's categories as its column holds them: a JSON list, None for none."""
    return json.dumps(list(categories), ensure_ascii=False) if categories else None


def categories_of(stored: str | None) -> tuple[str, ...]:
    """The categories ``categories_json`` stored; a value that is not a list of strings
    (written by hand) counts as none, so a rule never fails on it."""
    try:
        value = json.loads(stored) if stored else []
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


_Row = TypeVar("_Row")
MIGRATIONS = Path(__file__).parent.parent / "migrations"
# Seconds a PostgreSQL connection attempt may take before the database counts as unreachable.
CONNECT_TIMEOUT = 10
# A pooled PostgreSQL connection idle longer than this is checked before it is used.
IDLE_PING_SECONDS = 5.0
# pg_advisory_xact_lock key: processes starting together upgrade the schema one at a time.
MIGRATION_LOCK = 0x61676772
# pg_advisory_xact_lock key: processes starting together sync config.toml's feeds in turn.
FEED_SYNC_LOCK = 0x61676773
# Pages copied per step of an SQLite online backup; writers get the database between steps.
BACKUP_PAGES_PER_STEP = 1024


def newest_migration() -> str:
    """The head revision, read from the migrations' file names without loading Alembic:
    ``NNNN_what.py`` holds revision ``NNNN`` (tests/test_cli.py holds them to it)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["returned_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Check a pooled connection that sat idle (the server may have restarted meanwhile).

    Pinging on every checkout (pool_pre_ping) costs a round trip per transaction; a
    connection used a moment ago is alive, so only idle ones are asked.
    """
    if time.monotonic() - record.info.get("returned_at", 0.0) < IDLE_PING_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as exc:
        raise DisconnectionError(f"stale connection: {exc}") from exc


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    pages: int


def row_or_missing(session: Session, model: type[_Row], row_id: int, noun: str) -> _Row:
    """The row with this id, or NotFoundError naming what was looked for."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFoundError(f"no {noun} with id {row_id}")
    return row


def insert_for(dialect: str) -> Callable[..., postgresql.Insert | sqlite.Insert]:
    """The INSERT of this database's dialect, the one that knows ON CONFLICT."""
    # Imported here: a SQLite database never loads PostgreSQL's dialect (and its types).
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


class StoreBase:
    """A database and its migrations; the domain stores build on it."""

    def __init__(self, url: str) -> None:
        # "postgresql://" alone would ask SQLAlchemy for psycopg2, which is not installed.
        self.url = re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg://", url)
        try:
            if self.url.startswith("sqlite"):
                self._ensure_sqlite_directory(self.url)
                self.engine: Engine = create_engine(
                    self.url, connect_args={"timeout": 30, "check_same_thread": False}
                )
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(
                    self.url, pool_size=10, connect_args={"connect_timeout": CONNECT_TIMEOUT}
                )
                event.listen(self.engine, "checkin", _note_checkin)
                event.listen(self.engine, "checkout", _ping_if_idle)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(f"cannot open database {self.safe_url}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for logs and messages."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    @staticmethod
    def _ensure_sqlite_directory(url: str) -> None:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None (PostgreSQL, or an in-memory database)."""
        if self.engine.dialect.name != "sqlite":
            return None
        try:
            database = make_url(self.url).database
        except ArgumentError:
            return None
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database)

    @contextmanager
    def session(self, *, claim: bool = False) -> Iterator[Session]:
        """A transaction. ``claim``: one that reads rows in order to take them; on SQLite it
        takes the write lock first, so two processes never both read the same rows as free
        (PostgreSQL gets the same from FOR UPDATE SKIP LOCKED)."""
        try:
            with self._sessions.begin() as session:
                if claim and self.engine.dialect.name == "sqlite":
                    session.connection().exec_driver_sql("BEGIN IMMEDIATE")
                yield session
        except OperationalError as exc:
            raise StorageError(f"database {self.safe_url} failed: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ schema

    def upgrade(self) -> None:
        """Bring the schema to the newest migration, in place and in one transaction.

        Idempotent, and safe when several processes start at once on one PostgreSQL
        database: they take turns behind an advisory lock. A schema already at the newest
        migration costs one query: Alembic, slow to load, is not loaded for it.
        """
        if self._at_newest_migration():
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                if self.is_postgresql:
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                elif self.engine.dialect.name == "sqlite":
                    # pysqlite runs DDL outside any transaction unless told: a crash halfway
                    # through a migration would leave a schema no migration expects.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise StorageError(f"cannot upgrade database {self.safe_url}: {exc.orig}") from exc

    def _at_newest_migration(self) -> bool:
        try:
            with self.engine.connect() as connection:
                found = connection.execute(text("SELECT version_num FROM alembic_version"))
                return list(found.scalars()) == [newest_migration()]
        except SQLAlchemyError:  # no such table yet (a new database), or no database
            return False

    def ping(self) -> bool:
        """Does the database answer? For SQLite, the file must also still be where it was:
        a process writing into a deleted file would lose everything it writes."""
        path = self.sqlite_path
        if path is not None and not path.exists():
            return False
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    # ------------------------------------------------------------ backups

    def backup(self, target: Path) -> BackupResult:
        """Copy the live SQLite database to ``target`` with SQLite's online backup API.

        Writers keep working during the copy; the copy is checked, made self-contained (no
        WAL file beside it) and only then moved to ``target``, which must not exist.
        """
        if self.is_postgresql:
            raise StorageError(
                f"{self.safe_url} is a PostgreSQL database: back it up with pg_dump, "
                f"for example `pg_dump --format=custom --file {target} "
                f"'{pg_dump_url(self.safe_url)}'` (restore with pg_restore)"
            )
        source = self.sqlite_path
        if source is None or not source.exists():
            raise StorageError(f"no SQLite database file to back up at {self.safe_url}")
        if target.exists():
            raise StorageError(f"{target} already exists: a backup never overwrites a file")
        if not target.parent.is_dir():
            raise StorageError(f"{target.parent} is not a directory")
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        try:
            with (
                closing(sqlite3.connect(source, timeout=30)) as live,
                closing(sqlite3.connect(partial)) as copy,
            ):
                live.execute("PRAGMA busy_timeout=30000")
                live.backup(copy, pages=BACKUP_PAGES_PER_STEP)
                verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
                copy.execute("PRAGMA journal_mode=DELETE")
                pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
            if verdict != "ok":
                raise StorageError(f"the copy of {source} failed its integrity check: {verdict}")
            with partial.open("rb") as written:
                os.fsync(written.fileno())
            os.replace(partial, target)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot back up {source} to {target}: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return BackupResult(path=target, size=target.stat().st_size, pages=pages)


def pg_dump_url(url: str) -> str:
    """A libpq URL (what pg_dump takes) for an SQLAlchemy PostgreSQL URL."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)
