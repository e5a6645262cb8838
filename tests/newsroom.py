"""A newsroom for the review desk's tests: real newsletters, polled and translated for real.

The upstream sites (the Ghost-style newsletter, the excerpts feed with its two article
pages, and a hostile newsletter) and a LibreTranslate API run on 127.0.0.1; the real
pipeline polls, extracts and translates them in-process into pending drafts. That is done
once per test session; each test gets its own copy of the database, a config.toml beside
it (a free port, a review password file and API tokens), and an open ``Store``.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from servers import LibreTranslateServer, UpstreamServer, config_toml, free_port
from starlette.applications import Starlette

from aggregator import config as config_module

with warnings.catch_warnings():
    # Starlette would rather drive its test client with httpx2; httpx is what this project uses.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
from aggregator.config import Settings
from aggregator.pipeline import Services, process_backlog
from aggregator.polling.refresh import poll_feeds
from aggregator.store import DraftContent, DraftView, Store
from aggregator.web.app import create_app

GHOST_ORIGIN = "https://torment-nexus.mathewingram.com"
GHOST_FEED_PATH = "/rss/"
EXCERPTS_FEED_PATH = "/excerpt-only.rss"
HOSTILE_FEED_PATH = "/hostile.rss"
DATA_DIR = Path(__file__).parent / "data"
PASSWORD = "correct horse battery staple"
TOKENS = {"Camille": "camille-0123456789abcdef", "Dominique": "dominique-0123456789abcdef"}
# A token with the scope "read": what a feed reader's URL carries (the drafts feed).
READ_TOKEN = "feed-reader-0123456789abcdef"
MUSK_TITLE = "Does Elon Musk want to buy OpenAI? Yes and no"
COURTS_TITLE = "The courts and the executive order"
HOSTILE_TITLE_START = "The engineers"
SIMDJSON_TITLE = "JSON parsing: simdjson vs. JSON for Modern C++"


def serve_newsletters(upstream: UpstreamServer) -> None:
    base = upstream.base_url
    ghost = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    upstream.add(GHOST_FEED_PATH, ghost.replace(GHOST_ORIGIN, base))
    hostile = (DATA_DIR / "hostile-newsletter.rss").read_text(encoding="utf-8")
    upstream.add(HOSTILE_FEED_PATH, hostile.replace("{base}", base))
    excerpts = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8")
    upstream.add(EXCERPTS_FEED_PATH, excerpts.replace("{base}", base))
    for path, page in (
        (
            "/articles/json-parsing-simdjson-vs-json-for-modern-c/",
            "trafilatura_lemire.me.json.html",
        ),
        (
            "/articles/want-to-see-a-more-diverse-wordpress-contributor-community/",
            "trafilatura_blog.wordpress.com.diverse.html",
        ),
    ):
        upstream.add(path, (DATA_DIR / page).read_bytes(), content_type="text/html; charset=utf-8")


def config_text(
    database: Path, upstream: UpstreamServer, libre_url: str, port: int, extra: str = ""
) -> str:
    feeds = [
        {"url": upstream.url(GHOST_FEED_PATH), "name": "The Torment Nexus"},
        {"url": upstream.url(EXCERPTS_FEED_PATH), "name": "Excerpts Weekly"},
        {"url": upstream.url(HOSTILE_FEED_PATH), "name": "Hostile Weekly"},
    ]
    return config_toml(
        libre_url, feeds, database_url=f"sqlite:///{database}", port=port, extra=extra
    )


@dataclass
class Template:
    database: Path
    upstream: UpstreamServer
    libre_url: str


@pytest.fixture(scope="session")
def newsroom_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    folder = tmp_path_factory.mktemp("newsroom")
    with UpstreamServer() as upstream, LibreTranslateServer() as libretranslate:
        serve_newsletters(upstream)
        database = folder / "aggregator.db"
        path = folder / "config.toml"
        path.write_text(
            config_text(database, upstream, libretranslate.url("/"), free_port()),
            encoding="utf-8",
        )
        settings = config_module.load(path)
        store = Store.from_settings(settings)
        store.upgrade()
        store.sync_feeds(settings.feeds, settings, datetime.now(UTC))
        services = Services.build(settings, store)
        try:
            poll_feeds(services, force=True)
            process_backlog(services, retry_failed=True)
        finally:
            services.close()
            store.close()
        yield Template(database, upstream, libretranslate.url("/"))


@dataclass
class Newsroom:
    config: Path
    settings: Settings
    store: Store
    upstream: UpstreamServer

    @property
    def base_url(self) -> str:
        return self.settings.server.base_url

    def app(self, **kwargs: Any) -> Starlette:
        return create_app(self.settings, self.store, **kwargs)

    def client(self, app: Starlette | None = None) -> TestClient:
        return TestClient(app or self.app(), base_url=self.base_url, follow_redirects=False)

    def draft(self, title_start: str) -> DraftView:
        found = [d for d in self.store.list_drafts() if d.original_title.startswith(title_start)]
        assert len(found) == 1, [d.original_title for d in self.store.list_drafts()]
        return found[0]

    def redraft(
        self, draft: DraftView, *, full_html: str | None = None, **content: Any
    ) -> DraftView:
        """``draft`` written again as the pipeline writes it, through the store's own calls:
        sent back to translation, its entry claimed, taken again as ``full_html`` when given,
        and saved with ``content`` (DraftContent's fields) over its own. What no engine would
        produce (a warning the catalogue lacks, markup no sanitizer lets through) reaches the
        desk this way, as it would from an older version or another writer."""
        now = datetime.now(UTC)
        self.store.request_retranslation(draft.id, actor="test", now=now)
        claimed = self.store.claim_entries(now, timedelta(minutes=5), limit=1000)
        [entry] = [w for w in claimed if w.title == draft.original_title]
        self.store.release_entries([w.id for w in claimed if w is not entry])
        if full_html is not None:
            self.store.save_extracted(
                entry.id, full_html=full_html, source="page", language="en", now=now
            )
        fields = {
            "title": draft.title, "body_html": draft.body_html,
            "source_language": draft.source_language, "target_language": draft.target_language,
            "engine": draft.engine, "characters": draft.characters, "requests": draft.requests,
            "warnings": draft.warnings,
        }  # fmt: skip
        self.store.save_draft(entry.id, DraftContent(**{**fields, **content}), now=now)
        return self.store.get_draft(draft.id)

    def approve(self, title_start: str, actor: str = "Camille") -> DraftView:
        draft = self.draft(title_start)
        return self.store.approve(draft.id, actor=actor, now=datetime.now(UTC))


def newsroom_copy(folder: Path, template: Template) -> Newsroom:
    """A copy of the template's newsroom in ``folder``, with its own config and an open
    store (the caller closes it)."""
    database = folder / "aggregator.db"
    shutil.copyfile(template.database, database)
    (folder / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    (folder / "api-tokens").write_text(
        "".join(f"{name}:{token}\n" for name, token in TOKENS.items())
        + f"Lecteur:{READ_TOKEN}:read\n",
        encoding="utf-8",
    )
    extra = '[review]\npassword_file = "review-password"\napi_tokens_file = "api-tokens"\n'
    path = folder / "config.toml"
    path.write_text(
        config_text(database, template.upstream, template.libre_url, free_port(), extra),
        encoding="utf-8",
    )
    settings = config_module.load(path)
    return Newsroom(path, settings, Store.from_settings(settings), template.upstream)


@pytest.fixture
def newsroom(
    tmp_path: Path, newsroom_template: Template, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Newsroom]:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    room = newsroom_copy(tmp_path, newsroom_template)
    try:
        yield room
    finally:
        room.store.close()


# ---------------------------------------------------------------- driving the review pages


def form_values(html: str, action: str) -> dict[str, str]:
    """The hidden and text inputs of the form posting to ``action`` on a page."""
    page = lxml.html.fromstring(html)
    forms = [f for f in page.iter("form") if f.get("action") == action]
    assert forms, f"no form posting to {action}"
    values = {i.get("name"): i.get("value") or "" for i in forms[0].iter("input") if i.get("name")}
    for area in forms[0].iter("textarea"):
        values[area.get("name")] = area.text or ""
    return values


def log_in(client: TestClient, name: str = "Camille", password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/review/login")
    assert page.status_code == 200, page.text
    fields = form_values(page.text, "/review/login")
    answer = client.post("/review/login", data={**fields, "name": name, "password": password})
    assert answer.status_code == 303, answer.text
    queue = client.get("/review/")
    assert queue.status_code == 200, queue.text
    return csrf_of(queue.text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def change_original(newsroom: Newsroom, old: str, new: str) -> None:
    """The Ghost newsletter edits a published post: its feed now says ``new`` for ``old``;
    the feed is polled again (the real poll, as the daemon would)."""
    upstream = newsroom.upstream
    feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    feed = feed.replace(GHOST_ORIGIN, upstream.base_url)
    assert old in feed
    upstream.add(GHOST_FEED_PATH, feed.replace(old, new))
    services = Services.build(newsroom.settings, newsroom.store)
    try:
        poll_feeds(services, force=True, only=[upstream.url(GHOST_FEED_PATH)])
    finally:
        services.close()
        upstream.add(GHOST_FEED_PATH, feed)
