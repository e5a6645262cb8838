"""Hostile input through `aggregator poll`: broken URLs, errors nobody foresaw, private
networks, and a backlog whose oldest entries keep failing.

A URL httpx cannot build (``0177.0.0.1``, ``①②⑦.0.0.1``, a port out of range) once raised
``httpx.InvalidURL``, which is not an ``AggregatorError``: it ended the backlog run for
every entry, and in feed discovery it ended `aggregator poll` with a traceback. Here each
broken URL must stay the error of its own entry or feed, stored with its reason, while the
others are drafted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner
from conftest import WriteConfig, run_cli, run_cli_json
from servers import LibreTranslateServer, UpstreamServer

from aggregator import config as config_module
from aggregator.cli import main
from aggregator.extraction.extract import extract_article
from aggregator.pipeline import Report, Services, process_backlog
from aggregator.polling.parse_worker import parse_feed
from aggregator.polling.refresh import poll_feeds
from aggregator.store import Store

PARAGRAPH = (
    "The company said on Monday that the new service will be available to every reader of"
    " the newsletter, and that the team has worked for a whole year to make it fast, clear"
    " and useful for people who write and read on the web."
)

# Article links httpx or urllib refuse to build, and what the stored error must say.
BROKEN_LINKS: dict[str, str] = {
    "http://0177.0.0.1/octal": "invalid IPv4 address: '0177.0.0.1'",
    "http://127.000.000.001/padded": "invalid IPv4 address: '127.000.000.001'",
    "http://①②⑦.0.0.1/circled": "invalid IDNA hostname: '①②⑦.0.0.1'",
    "http://ex\u200bample.com/zero-width": "invalid IDNA hostname",
    "http://xn--/empty-a-label": "its host name is not valid",
    "http://example.com:99999/port": "port 99999 is out of range",
    "http://example.com:abc/port": "invalid port: 'abc'",
    "http://.../dots": "could not be resolved",
    "http://" + "a" * 70 + ".example/long-label": "could not be resolved",
    "ftp://example.com/file": "only http and https URLs can be fetched",
    "javascript:alert(1)": "only http and https URLs can be fetched",
}
# Redirects of an article page (or a feed) to a Location that cannot be fetched.
BROKEN_LOCATIONS: dict[str, str] = {
    "http://0177.0.0.1/x": "the server redirected to 'http://0177.0.0.1/x'",
    "http://[::1/x": "the server redirected to 'http://[::1/x'",
    "http://example.com:99999/x": "port 99999 is out of range",
}


def article_page(title: str) -> bytes:
    # Each page its own words: paragraphs that recur across a feed's pages are boilerplate.
    paragraphs = "".join(f"<p>{title}, part {n}: {PARAGRAPH}</p>" for n in range(4))
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body><main><article>"
        f"<h1>{title}</h1>{paragraphs}</article></main></body></html>"
    ).encode()


def rss(items: Sequence[tuple[str, str]]) -> bytes:
    """A feed of titles and links: (guid, link) per item. With no text of its own, every
    entry is read from its page (an entry with text and a link elsewhere is a link post,
    translated from the feed)."""
    body = "".join(
        f"<item><title>Post {guid}</title><guid>{guid}</guid><link>{escape(link)}</link></item>"
        for guid, link in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Broken links</title><link>http://example.org/</link>{body}</channel></rss>"
    ).encode()


def html_linking_to(*feeds: str) -> bytes:
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" href="{escape(url)}">' for url in feeds
    )
    return f"<!doctype html><html><head><title>A blog</title>{links}</head></html>".encode()


def entries_by_url(config: Path) -> dict[str | None, dict[str, Any]]:
    with sqlite3.connect(config.parent / "aggregator.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT url, state, attempts, last_error, next_attempt_at FROM entries ORDER BY id"
        ).fetchall()
    return {row["url"]: dict(row) for row in rows}


def poll_once(config: Path, **given: Any) -> Report:
    """What `aggregator poll` does, with the pipeline's parts ``given`` in place of its own."""
    settings = config_module.load(config)
    store = Store.from_settings(settings)
    try:
        store.upgrade()
        store.sync_feeds(settings.feeds, settings, datetime.now(UTC))
        services = Services.build(settings, store)
        services.extract = given.get("extract", services.extract)
        report = Report()
        try:
            poll_feeds(services, force=True, report=report, parse=given.get("parse", parse_feed))
            process_backlog(services, retry_failed=True, report=report)
        finally:
            services.close()
    finally:
        store.close()
    return report


def assert_no_leak(libretranslate: LibreTranslateServer) -> None:
    assert libretranslate.requests > 0
    assert libretranslate.leaked_in_query() == []


# -------------------------------------------------------------------------------- broken URLs


def test_every_kind_of_broken_article_link_is_that_entrys_error(
    upstream: UpstreamServer, libretranslate: LibreTranslateServer, write_config: WriteConfig
) -> None:
    items = [
        ("good-1", upstream.add("/p/good-1", article_page("Good one"), content_type="text/html"))
    ]
    items += [(f"broken-{n}", link) for n, link in enumerate(BROKEN_LINKS)]
    redirects = {}
    for n, location in enumerate(BROKEN_LOCATIONS):
        url = upstream.add(f"/moved/{n}", b"", status=302, headers={"Location": location})
        redirects[url] = BROKEN_LOCATIONS[location]
        items.append((f"moved-{n}", url))
    items.append(
        ("good-2", upstream.add("/p/good-2", article_page("Good two"), content_type="text/html"))
    )
    config = write_config([{"url": upstream.add("/rss", rss(items)), "name": "Broken"}])

    done = run_cli(config, "poll")

    assert "Traceback" not in done.stderr
    assert "entrées : " in done.stdout and "2 traduites" in done.stdout, done.stdout
    drafts = run_cli_json(config, "drafts", "list", "--json")
    assert isinstance(drafts, list)
    assert sorted(d["original_url"] for d in drafts) == [items[0][1], items[-1][1]]
    stored = entries_by_url(config)
    expected = {**BROKEN_LINKS, **redirects}
    for link, words in expected.items():
        entry = stored[link]
        assert words in (entry["last_error"] or ""), (link, entry)
        assert entry["attempts"] == 1 and entry["next_attempt_at"] is not None, entry
        assert entry["state"] == "new", entry
    assert_no_leak(libretranslate)

    # `aggregator poll` tries failing entries again now, each once, and still exits 0.
    again = run_cli(config, "poll")
    assert "Traceback" not in again.stderr
    assert all(entries_by_url(config)[link]["attempts"] == 2 for link in expected)


def test_a_broken_feed_url_redirect_or_discovered_link_is_that_feeds_error(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    good_feed = upstream.add("/good.rss", rss([]))
    feeds = {
        "octal feed": "http://0177.0.0.1/rss",
        "moved to nowhere": upstream.add(
            "/moved.rss", b"", status=301, headers={"Location": "http://[::1/rss"}
        ),
        "page of broken links": upstream.add(
            "/broken-page/",
            html_linking_to("http://0177.0.0.1/feed", "http://①②⑦.0.0.1/feed", "http://[::1/"),
            content_type="text/html",
        ),
        "page with one good link": upstream.add(
            "/mixed-page/",
            html_linking_to("http://127.000.000.001/feed", good_feed),
            content_type="text/html",
        ),
        "good": good_feed,
    }
    config = write_config([{"url": url, "name": name} for name, url in feeds.items()])

    done = run_cli(config, "poll")

    assert "Traceback" not in done.stderr
    listed = run_cli_json(config, "feeds", "list", "--json")
    assert isinstance(listed, list)
    by_name = {feed["name"]: feed for feed in listed}
    assert "invalid IPv4 address: '0177.0.0.1'" in by_name["octal feed"]["last_error"]
    assert "the server redirected to 'http://[::1/rss'" in by_name["moved to nowhere"]["last_error"]
    broken_page = by_name["page of broken links"]["last_error"]
    assert "invalid IPv4 address: '0177.0.0.1'" in broken_page
    assert "invalid IDNA hostname: '①②⑦.0.0.1'" in broken_page
    for name in ("page with one good link", "good"):
        assert by_name[name]["last_error"] is None, by_name[name]
        assert by_name[name]["error_count"] == 0


# ------------------------------------------------------------------------ unforeseen errors


@pytest.fixture
def cli_runner() -> Iterator[CliRunner]:
    yield CliRunner()


def test_an_unexpected_error_in_one_entry_or_feed_stays_with_it(
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    write_config: WriteConfig,
    cli_runner: CliRunner,
) -> None:
    """A bug is simulated where no input reaches one today: the extractor and the parser,
    given to the pipeline in their place, fail for one page and one feed."""
    pages = [
        upstream.add(f"/p/{name}", article_page(name), content_type="text/html")
        for name in ("first", "boom", "last")
    ]
    feed = upstream.add("/rss", rss([(url.rsplit("/", 1)[1], url) for url in pages]))
    doomed_feed = upstream.add("/doomed.rss", rss([]))
    config = write_config([{"url": feed, "name": "Feed"}, {"url": doomed_feed, "name": "Doomed"}])

    def extract(page: bytes | str, url: str) -> Any:
        if url.endswith("/boom"):
            raise RuntimeError("the extractor tripped")
        return extract_article(page, url)

    def parse(body: bytes, url: str, *args: Any, **kwargs: Any) -> Any:
        if url == doomed_feed:
            raise KeyError("a parser bug")
        return parse_feed(body, url, *args, **kwargs)

    report = poll_once(config, extract=extract, parse=parse)

    assert (report.entries["drafted"], report.entries["failed"]) == (2, 1), report
    boom = entries_by_url(config)[pages[1]]
    assert boom["last_error"] == "unexpected error (RuntimeError: the extractor tripped)"
    assert boom["attempts"] == 1 and boom["next_attempt_at"] is not None
    listed = json.loads(
        cli_runner.invoke(main, ["--config", str(config), "feeds", "list", "--json"]).stdout
    )
    doomed = next(f for f in listed if f["name"] == "Doomed")
    assert doomed["last_error"] == "unexpected error (KeyError: 'a parser bug')"
    assert_no_leak(libretranslate)


# ---------------------------------------------------------------------------- starvation


def test_one_poll_attempts_every_waiting_entry_once_oldest_first(
    upstream: UpstreamServer, libretranslate: LibreTranslateServer, write_config: WriteConfig
) -> None:
    """25 entries whose 6 oldest fail on every attempt: one `aggregator poll` tries each
    of the 25 once. Before, the oldest failing ones were claimed again and again (retry
    now ignores their backoff) until the run saw only entries it had tried, and stopped."""
    failing = [upstream.add(f"/p/{n}", b"down", status=500) for n in range(6)]
    good = [
        upstream.add(f"/p/{n}", article_page(f"Post {n}"), content_type="text/html")
        for n in range(6, 25)
    ]
    first = rss([(f"post-{n}", url) for n, url in enumerate(failing)])
    config = write_config([{"url": upstream.add("/rss", first), "name": "Busy"}])
    run_cli(config, "poll")  # the six fail once: they are the oldest, and failing
    upstream.add("/rss", rss([(f"post-{n}", url) for n, url in enumerate(failing + good)]))
    before = {url: upstream.hits(url.split(str(upstream.port), 1)[1]) for url in failing + good}

    done = run_cli(config, "poll")

    after = {url: upstream.hits(url.split(str(upstream.port), 1)[1]) for url in failing + good}
    assert {url: after[url] - before[url] for url in after} == dict.fromkeys(after, 1)
    assert "19 traduites" in done.stdout and "6 en échec" in done.stdout, done.stdout
    stored = entries_by_url(config)
    assert [stored[url]["attempts"] for url in failing] == [2] * 6
    assert all(stored[url]["state"] == "drafted" for url in good)


# ---------------------------------------------------------------------- private networks


def test_private_networks_are_allowed_per_feed_and_trust_is_the_configured_origin(
    upstream: UpstreamServer, libretranslate: LibreTranslateServer, write_config: WriteConfig
) -> None:
    """Every server here is on 127.0.0.1; the guard is off for one feed only. Another
    loopback server (another port) plays the internal service nobody configured."""
    with UpstreamServer() as internal:
        page = internal.add("/admin", article_page("Internal"), content_type="text/html")
        moved = upstream.add(
            "/moved.rss", b"", status=302, headers={"Location": internal.url("/x.rss")}
        )
        internal.add("/x.rss", rss([]))
        guarded_feed = upstream.add("/guarded.rss", rss([("guarded", page)]))
        open_feed = upstream.add("/open.rss", rss([("open", page + "?open")]))
        config = write_config(
            [
                {"url": guarded_feed, "name": "Guarded"},
                {"url": moved, "name": "Moved"},
                {"url": open_feed, "name": "Open", "allow_private_networks": True},
            ],
        )
        # The global default off (write_config turns it on for the tests' servers).
        text = config.read_text().replace(
            "allow_private_networks = true\n\n[translation]",
            "allow_private_networks = false\n\n[translation]",
        )
        config.write_text(text)

        done = run_cli(config, "poll")

        assert "1 traduite" in done.stdout and "1 en échec" in done.stdout, done.stdout
        stored = entries_by_url(config)
        assert "refused to connect to 127.0.0.1" in (stored[page]["last_error"] or "")
        assert stored[page + "?open"]["state"] == "drafted"
        listed = run_cli_json(config, "feeds", "list", "--json")
        assert isinstance(listed, list)
        moved_feed = next(f for f in listed if f["name"] == "Moved")
        assert f"redirected to {internal.url('/x.rss')}" in moved_feed["last_error"]
        assert "a loopback address" in moved_feed["last_error"]
        assert internal.hits("/x.rss") == 0
        assert [r.path for r in internal.requests] == ["/admin?open"]


def test_the_global_flag_is_only_a_default_a_feed_can_turn_off(
    upstream: UpstreamServer, libretranslate: LibreTranslateServer, write_config: WriteConfig
) -> None:
    with UpstreamServer() as internal:
        page = internal.add("/admin", article_page("Internal"), content_type="text/html")
        feed = upstream.add("/rss", rss([("one", page)]))
        trusting = upstream.add("/trusting.rss", rss([("two", page + "?ok")]))
        config = write_config(
            [
                {"url": feed, "name": "Strict", "allow_private_networks": False},
                {"url": trusting, "name": "Default"},
            ]
        )  # [fetch] allow_private_networks = true

        done = run_cli(config, "poll")

        assert "1 traduite" in done.stdout, done.stdout
        stored = entries_by_url(config)
        assert "refused to connect to 127.0.0.1" in (stored[page]["last_error"] or "")
        assert [r.path for r in internal.requests] == ["/admin?ok"]
