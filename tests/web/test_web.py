"""The public side over HTTP: published feeds, source feeds, article pages, the reviewers'
drafts feed, caching and conditional requests, paging, and the WebSub hub ping.

Drafts come from real newsletters polled and translated by the real pipeline (newsroom);
requests go through the real ASGI app.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import feedparser
import lxml.html
import pytest
import sqlalchemy
from feedcheck import CHECKS
from lxml import etree
from newsroom import (
    COURTS_TITLE,
    HOSTILE_TITLE_START,
    MUSK_TITLE,
    READ_TOKEN,
    SIMDJSON_TITLE,
    TOKENS,
    Newsroom,
)
from servers import LocalServer, _QuietHandler

from aggregator import config as config_module
from aggregator.store import Store

ATOM = "{http://www.w3.org/2005/Atom}"
FORMATS = ("atom", "rss", "json")


class FakeClock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entries(body: bytes, fmt: str) -> list[dict[str, Any]]:
    """title, author, link and content of each entry, whatever the format."""
    if fmt == "json":
        return [
            {
                "title": item["title"],
                "author": item["authors"][0]["name"],
                "link": item["url"],
                "content": item["content_html"],
            }
            for item in json.loads(body)["items"]
        ]
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.bozo_exception
    return [
        {"title": e.title, "author": e.author, "link": e.link, "content": e.content[0].value}
        for e in parsed.entries
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_published_feeds_carry_approved_drafts_only_with_their_credit(
    newsroom: Newsroom, fmt: str
) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    newsroom.store.reject(newsroom.draft(COURTS_TITLE).id, actor="Camille", now=datetime.now(UTC))
    client = newsroom.client()

    response = client.get(f"/feeds/published.{fmt}")

    assert response.status_code == 200
    content_type = {"atom": "application/atom+xml", "rss": "application/rss+xml"}
    assert response.headers["content-type"].startswith(
        content_type.get(fmt, "application/feed+json")
    )
    url = f"{newsroom.base_url}/feeds/published.{fmt}"
    assert CHECKS[fmt](response.content, url) == []
    [entry] = entries(response.content, fmt)
    assert entry["title"] == musk.title
    assert entry["title"].startswith("Fait Elon Musk vouloir")  # the dictionary's French
    assert entry["author"] == "Mathew Ingram"
    assert entry["link"] == f"{newsroom.base_url}/articles/{musk.id}"
    assert f'href="{musk.original_url}"' in entry["content"]
    assert "relue par Camille" in entry["content"]


def test_article_page_is_french_credited_and_missing_unless_approved(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    pending = newsroom.draft(COURTS_TITLE)
    client = newsroom.client()

    page = client.get(f"/articles/{musk.id}")

    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    document = lxml.html.fromstring(page.text)
    assert document.get("lang") == "fr"
    assert document.findtext(".//h1") == musk.title
    credit = document.find_class("credit")[0].text_content()
    assert "Source : Does Elon Musk want to buy OpenAI? Yes and no" in credit
    assert "article original de Mathew Ingram, publié le 12 février 2025" in credit
    assert "relue par Camille" in credit
    assert client.get(f"/articles/{pending.id}").status_code == 404
    assert client.get("/articles/999999").status_code == 404


@pytest.mark.parametrize("fmt", FORMATS)
def test_conditional_requests_get_304_and_gzip_is_served(newsroom: Newsroom, fmt: str) -> None:
    newsroom.approve(MUSK_TITLE)
    client = newsroom.client()
    path = f"/feeds/published.{fmt}"

    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})

    assert plain.headers["cache-control"] == "public, max-age=300"
    assert plain.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content)
    assert zipped.content == plain.content  # httpx decoded it: the same document
    etag, last_modified = plain.headers["etag"], plain.headers["last-modified"]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": zipped.headers["etag"], "Accept-Encoding": "gzip"},
        {"If-Modified-Since": last_modified},
    ):
        again = client.get(path, headers=headers)
        assert again.status_code == 304, headers
        assert again.content == b""
        assert again.headers["cache-control"] == "public, max-age=300"
    assert client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200
    earlier = format_datetime(datetime(2001, 1, 1, tzinfo=UTC), usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert client.get(path, headers=both).status_code == 200
    head = client.head(path, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200
    assert head.headers["etag"] == etag


def approve_through_api(client: Any, draft: Any, reviewer: str) -> None:
    """An approval as an editor's tool makes it: the desk tells the cache at once."""
    answer = client.post(
        f"/api/drafts/{draft.id}/approve",
        headers={"Authorization": f"Bearer {TOKENS[reviewer]}"},
        json={"version": draft.version},
    )
    assert answer.status_code == 200, answer.text


def test_an_approval_changes_the_etag_and_a_304_becomes_a_200(newsroom: Newsroom) -> None:
    newsroom.approve(MUSK_TITLE)
    client = newsroom.client()
    first = client.get("/feeds/published.atom")
    courts = newsroom.draft(COURTS_TITLE)
    approve_through_api(client, courts, "Dominique")

    second = client.get("/feeds/published.atom", headers={"If-None-Match": first.headers["etag"]})

    assert second.status_code == 200
    assert second.headers["etag"] != first.headers["etag"]
    assert len(entries(second.content, "atom")) == 2
    assert second.headers["last-modified"] >= first.headers["last-modified"]


def test_feeds_are_served_from_cache_until_the_ttl_then_follow_other_processes(
    newsroom: Newsroom,
) -> None:
    """Two servers on one database: a change made by the other shows up after cache_ttl."""
    clock = FakeClock()
    client = newsroom.client(newsroom.app(clock=clock))
    other_process = Store(newsroom.settings.database.url)
    first = client.get("/feeds/published.atom")
    draft = newsroom.draft(MUSK_TITLE)
    queries: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        queries.append(statement)

    sqlalchemy.event.listen(newsroom.store.engine, "before_cursor_execute", count)
    try:
        other_process.approve(draft.id, actor="Dominique", now=datetime.now(UTC))
        for _ in range(20):
            cached = client.get("/feeds/published.atom")
            assert cached.headers["etag"] == first.headers["etag"]
        assert queries == []  # nothing asked of the database within the TTL
        clock.now += newsroom.settings.publish.cache_ttl
        fresh = client.get("/feeds/published.atom")
        assert queries  # the stamp asked once the TTL is over
    finally:
        sqlalchemy.event.remove(newsroom.store.engine, "before_cursor_execute", count)
        other_process.close()
    assert fresh.headers["etag"] != first.headers["etag"]
    assert [e["title"] for e in entries(fresh.content, "atom")] == [draft.title]


def test_a_request_after_an_approval_never_gets_the_publication_from_before_it(
    newsroom: Newsroom,
) -> None:
    """The daemon's publication thread may be rendering when the editor approves; the
    feed fetched next must show the approval, even while that rendering is still going."""
    clock = FakeClock()
    app = newsroom.app(clock=clock)
    cache = app.state.cache
    client = newsroom.client(app)
    client.get("/feeds/published.atom")
    render, rendering, release = cache.render, threading.Event(), threading.Event()

    def slow_render(stamp: Any) -> Any:
        rendering.set()
        release.wait(10)
        return render(stamp)

    cache.render = slow_render
    musk = newsroom.draft(MUSK_TITLE)
    approve_through_api(client, musk, "Camille")
    publication_thread = threading.Thread(target=cache.check)
    publication_thread.start()
    try:
        assert rendering.wait(10)
        assert cache.fresh("/feeds/published.atom") is None  # not the old feed
    finally:
        release.set()
        publication_thread.join(10)
    after = client.get("/feeds/published.atom")
    assert [e["title"] for e in entries(after.content, "atom")] == [musk.title]


def test_long_feeds_are_paged_as_rfc_5005_says(newsroom: Newsroom) -> None:
    settings = dataclasses.replace(
        newsroom.settings,
        publish=dataclasses.replace(newsroom.settings.publish, max_entries=2),
    )
    for draft in newsroom.store.list_drafts():
        newsroom.store.approve(draft.id, actor="Camille", now=datetime.now(UTC))
    client = newsroom.client(_app(newsroom, settings))
    approved = {d.title for d in newsroom.store.list_drafts()}
    assert len(approved) == 5

    seen: list[str] = []
    url: str | None = f"{newsroom.base_url}/feeds/published.atom"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert CHECKS["atom"](response.content, url) == []
        root = etree.fromstring(response.content)
        seen += [e.findtext(f"{ATOM}title") or "" for e in root.findall(f"{ATOM}entry")]
        links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
        assert links["first"] == f"{newsroom.base_url}/feeds/published.atom"
        assert links["last"] == f"{newsroom.base_url}/feeds/published.atom?page=3"
        url = links.get("next")
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(approved)  # every entry once, none twice
    json_page = client.get("/feeds/published.json").json()
    assert json_page["next_url"] == f"{newsroom.base_url}/feeds/published.json?page=2"
    assert client.get("/feeds/published.atom?page=4").status_code == 404
    for bad in ("0", "abc", "-1", "1.5", "99999999999"):
        answer = client.get(f"/feeds/published.atom?page={bad}")
        assert answer.status_code == 422, bad
        assert "page" in answer.text


def _app(newsroom: Newsroom, settings: config_module.Settings) -> Any:
    from aggregator.web.app import create_app

    return create_app(settings, newsroom.store)


def test_source_feeds_hold_one_newsletter_each(newsroom: Newsroom) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    simdjson = newsroom.approve(SIMDJSON_TITLE)
    client = newsroom.client()

    ghost = client.get(f"/feeds/sources/{musk.feed_slug}.atom")
    excerpts = client.get(f"/feeds/sources/{simdjson.feed_slug}.atom")

    for response, draft in ((ghost, musk), (excerpts, simdjson)):
        url = f"{newsroom.base_url}/feeds/sources/{draft.feed_slug}.atom"
        assert CHECKS["atom"](response.content, url) == []
        assert [e["title"] for e in entries(response.content, "atom")] == [draft.title]
        title = etree.fromstring(response.content).findtext(f"{ATOM}title")
        assert title == f"Newsletters en français — {draft.feed_title}"
    rss = client.get(f"/feeds/sources/{musk.feed_slug}.rss")
    assert (
        CHECKS["rss"](rss.content, f"{newsroom.base_url}/feeds/sources/{musk.feed_slug}.rss") == []
    )
    assert client.get("/feeds/sources/no-such-newsletter.atom").status_code == 404
    assert client.get(f"/feeds/sources/{musk.feed_slug}.xml").status_code == 404
    assert client.get("/feeds/published.xml").status_code == 404


def test_reviewers_read_the_queue_as_a_feed_with_their_token(newsroom: Newsroom) -> None:
    client = newsroom.client()
    pending = {d.title for d in newsroom.store.review_queue()}

    missing = client.get("/feeds/drafts.atom")
    wrong = client.get("/feeds/drafts.atom?token=not-a-token-at-all")
    good = client.get(f"/feeds/drafts.atom?token={READ_TOKEN}")

    assert missing.status_code == wrong.status_code == 401
    assert "token" in missing.text
    assert good.status_code == 200
    assert good.headers["cache-control"] == "private, no-store"
    url = f"{newsroom.base_url}/feeds/drafts.atom"  # the self link never carries the token
    assert CHECKS["atom"](good.content, url) == []
    parsed = feedparser.parse(good.content)
    assert {e.title for e in parsed.entries} == pending
    assert all(e.link.startswith(f"{newsroom.base_url}/review/drafts/") for e in parsed.entries)


def test_hostile_titles_and_authors_stay_text_in_every_feed(newsroom: Newsroom) -> None:
    hostile = newsroom.approve(HOSTILE_TITLE_START)
    client = newsroom.client()
    for fmt in FORMATS:
        [entry] = entries(client.get(f"/feeds/published.{fmt}").content, fmt)
        assert entry["title"] == hostile.title
        assert "onerror" in entry["title"]  # shown as the text it is, never as markup
        fragment = lxml.html.fragment_fromstring(entry["content"], create_parent="div")
        for element in fragment.iter():
            assert element.tag not in ("script", "iframe", "form", "style", "object", "svg")
            assert not [a for a in element.attrib if a.startswith("on") or a == "style"]
            for name in ("href", "src"):
                value = (element.get(name) or "").lower()
                assert not value.startswith(("javascript", "data")), element.attrib


# ---------------------------------------------------------------- WebSub


class _HubHandler(_QuietHandler):
    hub: ClassVar[HubServer]

    def do_POST(self) -> None:
        fields = parse_qs(self.read_body().decode())
        self.hub.received(fields)
        self.send_body(202, b"", {})


class HubServer(LocalServer):
    """A WebSub hub: records publish pings and, as real hubs do, fetches each topic."""

    def __init__(self) -> None:
        handler = type("HubHandler", (_HubHandler,), {"hub": self})
        super().__init__(handler)
        self.pings: list[dict[str, list[str]]] = []
        self.fetched: dict[str, bytes] = {}
        self.changed = threading.Condition()

    def received(self, fields: dict[str, list[str]]) -> None:
        with self.changed:
            self.pings.append(fields)
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, list[str]]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.pings) >= count, timeout=timeout)
            return list(self.pings)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


def test_approvals_ping_the_websub_hub_for_every_published_feed(
    newsroom: Newsroom, hub: HubServer
) -> None:
    settings = dataclasses.replace(
        newsroom.settings,
        publish=dataclasses.replace(newsroom.settings.publish, hub_url=hub.url("/hub")),
    )
    app = _app(newsroom, settings)
    client = newsroom.client(app)
    draft = newsroom.draft(MUSK_TITLE)
    feed = client.get("/feeds/published.atom")
    hub_links = [
        link.get("href")
        for link in etree.fromstring(feed.content).findall(f"{ATOM}link")
        if link.get("rel") == "hub"
    ]
    assert hub_links == [hub.url("/hub")]
    assert hub.pings == []  # nothing changed yet

    answer = client.post(
        f"/api/drafts/{draft.id}/approve",
        json={"version": draft.version},
        headers={"Authorization": f"Bearer {TOKENS['Camille']}"},
    )
    assert answer.status_code == 200, answer.text

    slugs = sorted(newsroom.store.feed_slugs())
    expected = {f"{newsroom.base_url}/feeds/published.{f}" for f in FORMATS} | {
        f"{newsroom.base_url}/feeds/sources/{slug}.atom" for slug in slugs
    }
    pings = hub.wait_for(len(expected))
    assert {p["hub.mode"][0] for p in pings} == {"publish"}
    assert {p["hub.url"][0] for p in pings} == expected
    app.state.desk.close()


def test_a_change_made_elsewhere_is_announced_to_the_hub_too(
    newsroom: Newsroom, hub: HubServer
) -> None:
    settings = dataclasses.replace(
        newsroom.settings,
        publish=dataclasses.replace(newsroom.settings.publish, hub_url=hub.url("/hub")),
    )
    app = _app(newsroom, settings)
    notifier = app.state.desk.notifier
    notifier.interval = 0.05  # look at the database often, for the test's sake
    notifier.poke()
    try:
        newsroom.approve(MUSK_TITLE)  # as `aggregator drafts approve` would, in another process
        pings = hub.wait_for(3)
    finally:
        app.state.desk.close()
    assert f"{newsroom.base_url}/feeds/published.atom" in {p["hub.url"][0] for p in pings}


def test_a_hub_that_fails_never_fails_the_review_action(newsroom: Newsroom) -> None:
    settings = dataclasses.replace(
        newsroom.settings,
        publish=dataclasses.replace(newsroom.settings.publish, hub_url="http://127.0.0.1:9/"),
    )
    app = _app(newsroom, settings)
    client = newsroom.client(app)
    draft = newsroom.draft(MUSK_TITLE)
    try:
        answer = client.post(
            f"/api/drafts/{draft.id}/approve",
            json={"version": draft.version},
            headers={"Authorization": f"Bearer {TOKENS['Camille']}"},
        )
        assert answer.status_code == 200
        assert app.state.desk.notifier.ping() == 0  # refused connection: logged, not raised
    finally:
        app.state.desk.close()


def test_healthz_answers_when_the_database_does(newsroom: Newsroom) -> None:
    assert newsroom.client().get("/healthz").text == "ok\n"


def test_odd_queries_and_missing_pages_neither_render_again_nor_add_pages(
    newsroom: Newsroom,
) -> None:
    newsroom.approve(MUSK_TITLE)
    client = newsroom.client()
    first = client.get("/feeds/published.atom")
    publication = Path(newsroom.settings.publish.directory) / "current"
    tree, files = publication.resolve(), sorted(publication.rglob("*"))

    for n in range(40):
        same = client.get(f"/feeds/published.atom?utm_source={n}&page=1")
        assert same.headers["etag"] == first.headers["etag"]
        assert client.get(f"/feeds/published.atom?page={n + 2}").status_code == 404
        assert client.get(f"/articles/{100_000 + n}").status_code == 404

    # The same publication, rendered once: the same tree with the same files.
    assert (publication.resolve(), sorted(publication.rglob("*"))) == (tree, files)
