"""Real feed readers subscribe to what `aggregator serve` publishes: newsboat (Debian's
package, run non-interactively: `newsboat -x reload`, then its SQLite cache is read) and the
`reader` library. Each must see the French titles, the original authors and our links.

newsboat needs /usr/bin/newsboat (apt-get install newsboat): skipped without it, failed
instead when AGGREGATOR_TEST_STRICT=1. newsboat 2.21 reads no JSON Feed; the JSON Feed is
read by `reader`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import aggregator_process
from newsroom import HOSTILE_TITLE_START, MUSK_TITLE, SIMDJSON_TITLE, Newsroom
from reader import make_reader

from aggregator.store import DraftView

NEWSBOAT = shutil.which("newsboat")
STRICT = os.environ.get("AGGREGATOR_TEST_STRICT") == "1"


@pytest.fixture
def published(newsroom: Newsroom) -> Iterator[tuple[Newsroom, list[DraftView]]]:
    drafts = [
        newsroom.approve(title) for title in (MUSK_TITLE, SIMDJSON_TITLE, HOSTILE_TITLE_START)
    ]
    with aggregator_process(newsroom.config, newsroom.base_url, "serve"):
        yield newsroom, drafts


def feed_urls(newsroom: Newsroom, drafts: list[DraftView], formats: tuple[str, ...]) -> list[str]:
    urls = [f"{newsroom.base_url}/feeds/published.{fmt}" for fmt in formats]
    slugs = sorted({d.feed_slug for d in drafts})
    return urls + [f"{newsroom.base_url}/feeds/sources/{slug}.atom" for slug in slugs]


def expected(newsroom: Newsroom, drafts: list[DraftView]) -> set[tuple[str, str, str]]:
    return {(d.title, d.author or "", f"{newsroom.base_url}/articles/{d.id}") for d in drafts}


def test_newsboat_reads_every_published_feed(
    published: tuple[Newsroom, list[DraftView]], tmp_path: Path
) -> None:
    if NEWSBOAT is None:
        if STRICT:
            pytest.fail("newsboat is missing; AGGREGATOR_TEST_STRICT=1 requires it")
        pytest.skip("newsboat is missing (apt-get install newsboat)")
    newsroom, drafts = published
    # One subscriber per feed: newsboat keeps one copy of an entry id across all its feeds,
    # and the same entry (same tag: id) is in the site-wide feed and in its source's feed.
    for url in feed_urls(newsroom, drafts, ("atom", "rss")):
        title, items = newsboat_reads(url, tmp_path / url.rsplit("/", 1)[1])
        if "/sources/" in url:
            slug = url.rsplit("/", 1)[1].removesuffix(".atom")
            mine = [d for d in drafts if d.feed_slug == slug]
            assert title == f"Newsletters en français — {mine[0].feed}", url  # its configured name
        else:
            mine = drafts
            assert title == "Newsletters en français", url
        assert items == expected(newsroom, mine), url


def newsboat_reads(url: str, folder: Path) -> tuple[str, set[tuple[str, str, str]]]:
    """`newsboat -x reload` with only this feed; its title and items from its cache."""
    assert NEWSBOAT is not None
    folder.mkdir()
    (folder / "urls").write_text(url + "\n", encoding="utf-8")
    (folder / "config").write_text("reload-threads 1\n", encoding="utf-8")
    cache = folder / "cache.db"
    result = subprocess.run(
        [NEWSBOAT, "-u", str(folder / "urls"), "-c", str(cache), "-C", str(folder / "config"),
         "-x", "reload", "-l", "4", "-d", str(folder / "log")],
        capture_output=True, text=True, timeout=60, check=False,
        env={"HOME": str(folder), "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
    )  # fmt: skip
    log = (folder / "log").read_text(errors="replace")
    assert result.returncode == 0, result.stderr + result.stdout + log
    assert "ERROR" not in log, log
    with sqlite3.connect(cache) as database:
        [(title,)] = database.execute("SELECT title FROM rss_feed").fetchall()
        items = database.execute("SELECT title, author, url FROM rss_item").fetchall()
    return title, set(items)


def test_the_reader_library_reads_every_published_feed(
    published: tuple[Newsroom, list[DraftView]], tmp_path: Path
) -> None:
    newsroom, drafts = published
    urls = feed_urls(newsroom, drafts, ("atom", "rss", "json"))
    reader = make_reader(str(tmp_path / "reader.sqlite"))
    try:
        for url in urls:
            reader.add_feed(url)
        reader.update_feeds()
        for url in urls:
            feed = reader.get_feed(url)
            assert feed.last_exception is None, (url, feed.last_exception)
            assert feed.title is not None and feed.title.startswith("Newsletters en français")
        entries = list(reader.get_entries())
    finally:
        reader.close()
    for url in urls:
        mine = [e for e in entries if e.feed_url == url]
        seen = {(e.title, e.authors_str, e.link) for e in mine}
        if "/sources/" in url:
            slug = url.rsplit("/", 1)[1].removesuffix(".atom")
            assert seen == expected(newsroom, [d for d in drafts if d.feed_slug == slug]), url
        else:
            assert seen == expected(newsroom, drafts), url
        for entry in mine:
            html = " ".join(c.value for c in entry.content) or entry.summary or ""
            assert "Source : " in html and "relue par Camille" in html, url
