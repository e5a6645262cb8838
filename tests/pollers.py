"""A poller on its own SQLite database, with the clock in the test's hands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aggregator import config as config_module
from aggregator.models import Entry, Feed
from aggregator.pipeline import Report, Services
from aggregator.polling import refresh
from aggregator.store import Store

START = datetime(2025, 2, 12, 15, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Poller:
    services: Services
    clock: Clock
    parse: refresh.FeedParser = refresh.parse_feed

    @property
    def store(self) -> Store:
        return self.services.store

    def poll(self, *, force: bool = False, only: tuple[str, ...] = ()) -> Report:
        return refresh.poll_feeds(self.services, force=force, only=only, parse=self.parse)

    def feed(self, name: str = "feed") -> Feed:
        with self.store.session() as session:
            return session.scalars(select(Feed).where(Feed.name == name)).one()

    def entries(self, name: str = "feed") -> list[Entry]:
        with self.store.session() as session:
            query = select(Entry).join(Feed).where(Feed.name == name).order_by(Entry.id)
            return list(session.scalars(query))

    def poll_when_due(self, name: str = "feed") -> Report:
        """Move the clock to the feed's next check, then run the daemon's (unforced) poll."""
        due = self.feed(name).next_check_at
        assert due is not None
        self.clock.now = due
        return self.poll()


def make_poller(tmp_path: Path, feeds: list[dict[str, Any]], **fetch: Any) -> Poller:
    raw: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path / 'aggregator.db'}"},
        "fetch": {"allow_private_networks": True, "timeout": "3s", **fetch},
        "schedule": {"default_interval": "30m"},
        "feeds": feeds,
    }
    settings = config_module.from_dict(raw, tmp_path / "config.toml")
    store = Store.from_settings(settings)
    store.upgrade()
    clock = Clock()
    store.sync_feeds(settings.feeds, settings, clock())
    services = Services.build(settings, store)
    services.clock = clock
    return Poller(services, clock)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Poller] = []

    def build(feeds: list[dict[str, Any]], **fetch: Any) -> Poller:
        poller = make_poller(tmp_path, feeds, **fetch)
        made.append(poller)
        return poller

    yield build
    for poller in made:
        poller.services.close()
        poller.store.close()


def one_feed(make: Any, url: str, **fetch: Any) -> Poller:
    poller: Poller = make([{"url": url, "name": "feed"}], **fetch)
    return poller
