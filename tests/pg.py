"""Throwaway PostgreSQL databases on the local server, for tests and benchmarks.

Each database is created from the ``test`` database's server (postgresql://postgres@
127.0.0.1:5432, trust auth) under a random name and dropped afterwards, even when processes
still hold connections to it. Without a reachable server the tests that need one are
skipped, or fail when AGGREGATOR_TEST_STRICT=1 (CI starts the server).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

SERVER = "postgresql://postgres@127.0.0.1:5432"
ADMIN_DATABASE = "test"
PREFIX = "aggregator_test"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(f"{SERVER}/{ADMIN_DATABASE}", autocommit=True, connect_timeout=5)


def unreachable_reason() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        with _admin() as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL is not reachable at {SERVER}/{ADMIN_DATABASE}: {error}".strip()
    return None


def sqlalchemy_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def create_database(name: str) -> None:
    with _admin() as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    """Drop it now, closing the connections other processes still have to it."""
    with _admin() as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def throwaway_database() -> Iterator[tuple[str, str]]:
    """A new empty database: yields (name, SQLAlchemy URL); dropped on exit."""
    name = f"{PREFIX}_{os.getpid()}_{secrets.token_hex(4)}"
    create_database(name)
    try:
        yield name, sqlalchemy_url(name)
    finally:
        drop_database(name)


def require_postgresql() -> None:
    reason = unreachable_reason()
    if reason is None:
        return
    if os.environ.get("AGGREGATOR_TEST_STRICT") == "1":
        pytest.fail(f"{reason} (AGGREGATOR_TEST_STRICT=1: PostgreSQL is required)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL, once checked for this session; skips (or fails) without it."""
    require_postgresql()
    return SERVER


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[tuple[str, str]]:
    """A fresh database for one test: (name, SQLAlchemy URL)."""
    with throwaway_database() as database:
        yield database


@pytest.fixture
def postgres_url(postgres_database: tuple[str, str]) -> str:
    """SQLAlchemy URL of a fresh database for one test."""
    return postgres_database[1]
