"""The pipeline in one process, for translation tests: a Ghost-style newsletter served by
``UpstreamServer``, LibreTranslate on 127.0.0.1, SQLite in a temp dir, and the real stages
(poll, full text, language, translation, draft) with an injected clock.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lxml.html
from sqlalchemy import select

if __package__:  # imported as tests.translation_desk, by a benchmark run from the root
    from tests.servers import LibreTranslateServer, UpstreamServer, config_toml
else:  # by pytest, beside the other test modules
    from servers import LibreTranslateServer, UpstreamServer, config_toml

from aggregator import config as config_module
from aggregator.config import Settings
from aggregator.models import Draft, Entry
from aggregator.pipeline import Report, Services, process_backlog
from aggregator.polling.refresh import poll_feeds
from aggregator.store import Store
from aggregator.translation.chain import BreakerBoard

DATA_DIR = Path(__file__).parent / "data"
GHOST_ORIGIN = "https://torment-nexus.mathewingram.com"
FEED_PATH = "/rss/"
MEMBERS_ONLY_PATH = "/a-year-of-paid-newsletters/"


def real_article_pages() -> dict[str, str]:
    """The real article pages of tests/data and the URL each was published at (from the
    upstream oracle files beside them)."""
    pages = {}
    for oracle in sorted(DATA_DIR.glob("trafilatura_*.expected.json")):
        page = oracle.name.replace(".expected.json", ".html")
        pages[page] = json.loads(oracle.read_text(encoding="utf-8"))["url"]
    return pages


BLOCKS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote", "figcaption", "td")


def ghost_feed(base: str) -> str:
    return (
        (DATA_DIR / "torment-nexus-like.rss")
        .read_text(encoding="utf-8")
        .replace(GHOST_ORIGIN, base)
    )


def feed_bodies(feed: str) -> list[str]:
    return re.findall(r"<content:encoded><!\[CDATA\[(.*?)\]\]></content:encoded>", feed, re.S)


def outline(html: str) -> dict[str, list[str]]:
    """What must survive translation: headings, links, images, list items, quotes, code."""
    root = lxml.html.fragment_fromstring(html or "<p></p>", create_parent="div")
    return {
        "links": [a.get("href", "") for a in root.iter("a")],
        "images": [i.get("src", "") for i in root.iter("img")],
        "blocks": [str(e.tag) for e in root.iter(*BLOCKS)],
        "code": [lxml.html.tostring(c, encoding="unicode") for c in root.iter("code", "pre")],
    }


@dataclass
class MonotonicClock:
    now: float = 10_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Desk:
    settings: Settings
    store: Store
    services: Services
    upstream: UpstreamServer
    libretranslate: LibreTranslateServer
    moment: list[datetime]
    breaker_clock: MonotonicClock
    reports: list[Report] = field(default_factory=list)
    workers: int = 2

    def poll(self) -> Report:
        report = Report()
        self.store.sync_feeds(self.settings.feeds, self.settings, self.moment[0])
        poll_feeds(self.services, force=True, report=report)
        return self.process(report)

    def process(self, report: Report | None = None) -> Report:
        report = process_backlog(
            self.services, retry_failed=True, report=report, workers=self.workers
        )
        self.reports.append(report)
        return report

    def entries(self) -> dict[str, Entry]:
        with self.store.session() as session:
            return {e.title: e for e in session.scalars(select(Entry))}

    def drafts(self) -> dict[str, Draft]:
        with self.store.session() as session:
            return {d.entry.title: d for d in session.scalars(select(Draft))}

    def heal_breakers(self) -> None:
        """As much time as any breaker could ask for goes by."""
        self.breaker_clock.now += 24 * 3600


def open_desk(
    tmp_path: Path,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    *,
    translation: dict[str, Any] | None = None,
    feed: str | None = None,
    moment: datetime | None = None,
    feeds: list[dict[str, Any]] | None = None,
) -> Desk:
    """The newsletter at FEED_PATH, or ``feeds`` ([[feeds]] tables), polled by the real
    stages into ``tmp_path``'s database."""
    base = upstream.base_url
    upstream.add(FEED_PATH, feed if feed is not None else ghost_feed(base), etag="v1")
    members_only = (DATA_DIR / "a-year-of-paid-newsletters.html").read_text(encoding="utf-8")
    upstream.add(
        MEMBERS_ONLY_PATH,
        members_only.replace(GHOST_ORIGIN, base),
        content_type="text/html; charset=utf-8",
    )
    raw: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path}/aggregator.db"},
        "fetch": {"allow_private_networks": True},
        "translation": {
            "engine": "libre",
            "timeout": "1s",
            "libre": {"url": libretranslate.url("/"), "api_key": "test"},
            **(translation or {}),
        },
        "feeds": feeds or [{"url": upstream.url(FEED_PATH), "name": "The Torment Nexus"}],
    }
    settings = config_module.from_dict(raw, tmp_path / "config.toml")
    store = Store.from_settings(settings)
    store.upgrade()
    clock = [moment or datetime(2025, 2, 12, 16, 0, tzinfo=UTC)]
    services = Services.build(settings, store)
    services.clock = lambda: clock[0]
    breaker_clock = MonotonicClock()
    services.breakers = BreakerBoard(
        settings.translation.breaker_threshold,
        float(settings.translation.breaker_cooldown),
        clock=breaker_clock,
    )
    return Desk(settings, store, services, upstream, libretranslate, clock, breaker_clock)


def write_config(desk: Desk, path: Path, extra: str = "") -> Path:
    """A config.toml for the CLI that points at the desk's database and servers."""
    feeds = [{"url": desk.upstream.url(FEED_PATH), "name": "The Torment Nexus"}]
    text = config_toml(
        desk.libretranslate.url("/"), feeds, database_url=desk.settings.database.url, extra=extra
    )
    path.write_text(text, encoding="utf-8")
    return path
