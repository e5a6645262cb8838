"""A published draft whose text came from the article page (the feed has only an excerpt):
when the feed says the post changed, the page is read again and the desk and the API show
what changed, as they do for drafts taken from the feed; the published French stays as
reviewed. Local upstream and LibreTranslate servers, the real CLI poll.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from conftest import DATA_DIR, WriteConfig, run_cli, run_cli_json
from newsroom import PASSWORD, TOKENS, log_in
from servers import UpstreamServer

from aggregator import config as config_module
from aggregator.store import Store
from aggregator.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SIMDJSON_PATH = "/articles/json-parsing-simdjson-vs-json-for-modern-c/"
WORDPRESS_PATH = "/articles/want-to-see-a-more-diverse-wordpress-contributor-community/"
SIMDJSON_TITLE = "JSON parsing: simdjson vs. JSON for Modern C++"
OLD_SENTENCE = "I use a Skylake processor with GNU GCC 8.3."
NEW_SENTENCE = "I use a Cannon Lake processor with GNU GCC 9.1."
OLD_EXCERPT = "How fast is simdjson compared with one of the nicest C++ JSON libraries?"
NEW_EXCERPT = "How fast is simdjson, measured again, compared with a nice C++ JSON library?"
CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}


class Excerpts:
    def __init__(self, upstream: UpstreamServer) -> None:
        self.upstream = upstream
        self.feed = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8")
        self.feed = self.feed.replace("{base}", upstream.base_url)
        self.page = (DATA_DIR / "trafilatura_lemire.me.json.html").read_bytes()
        assert OLD_EXCERPT in self.feed and OLD_SENTENCE.encode() in self.page
        upstream.add("/excerpt-only.rss", self.feed)
        wordpress = (DATA_DIR / "trafilatura_blog.wordpress.com.diverse.html").read_bytes()
        upstream.add(WORDPRESS_PATH, wordpress, content_type="text/html; charset=utf-8")
        self.serve_page(self.page)

    def serve_page(self, page: bytes) -> None:
        self.upstream.add(SIMDJSON_PATH, page, content_type="text/html; charset=utf-8")

    def edit_post(self) -> None:
        """The author edits the article; the feed's excerpt changes with it."""
        self.serve_page(self.page.replace(OLD_SENTENCE.encode(), NEW_SENTENCE.encode()))
        self.upstream.add("/excerpt-only.rss", self.feed.replace(OLD_EXCERPT, NEW_EXCERPT))


@pytest.fixture
def config(tmp_path: Path, write_config: WriteConfig, upstream: UpstreamServer) -> Path:
    (tmp_path / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "api-tokens").write_text(f"Camille:{TOKENS['Camille']}\n", encoding="utf-8")
    return write_config(
        [{"url": upstream.url("/excerpt-only.rss"), "name": "Excerpts Weekly"}],
        extra='[review]\npassword_file = "review-password"\napi_tokens_file = "api-tokens"',
    )


@pytest.fixture
def client(config: Path) -> Iterator[TestClient]:
    settings = config_module.load(config)
    store = Store.from_settings(settings)
    try:
        app = create_app(settings, store)
        yield TestClient(app, base_url=settings.server.base_url, follow_redirects=False)
    finally:
        store.close()


def simdjson_draft(config: Path) -> dict[str, Any]:
    drafts = run_cli_json(config, "drafts", "list", "--status", "all", "--json")
    assert isinstance(drafts, list)
    [draft] = [d for d in drafts if d["original_title"] == SIMDJSON_TITLE]
    assert isinstance(draft, dict)
    return draft


def test_a_changed_article_page_is_read_again_and_diffed_like_a_feed_based_draft(
    config: Path, upstream: UpstreamServer, client: TestClient
) -> None:
    site = Excerpts(upstream)
    run_cli(config, "poll")
    draft = simdjson_draft(config)
    run_cli(config, "drafts", "approve", str(draft["id"]), "--as", "Camille")
    published = client.get(f"/api/drafts/{draft['id']}", headers=CAMILLE).json()
    assert published["status"] == "approved" and not published["stale"]
    page_reads = upstream.hits(SIMDJSON_PATH)

    site.edit_post()
    run_cli(config, "poll")

    assert upstream.hits(SIMDJSON_PATH) == page_reads + 1  # read again, once
    detail = client.get(f"/api/drafts/{draft['id']}", headers=CAMILLE).json()
    assert detail["stale"]
    changes = detail["source_changes"]
    removed = [c["text"] for c in changes if c["kind"] == "removed"]
    added = [c["text"] for c in changes if c["kind"] == "added"]
    assert len(removed) == len(added) == 1
    assert OLD_SENTENCE in removed[0] and NEW_SENTENCE in added[0]
    assert {c["kind"] for c in changes} == {"same", "removed", "added"}  # with context
    assert (detail["status"], detail["body_html"]) == ("approved", published["body_html"])

    log_in(client)
    page = lxml.html.fromstring(client.get(f"/review/drafts/{draft['id']}").text)
    box = page.get_element_by_id("stale")
    assert [li.text_content() for li in box.find_class("diff-added")] == added


def test_an_unchanged_feed_reads_no_page_again(
    config: Path, upstream: UpstreamServer, client: TestClient
) -> None:
    Excerpts(upstream)
    run_cli(config, "poll")
    draft = simdjson_draft(config)
    run_cli(config, "drafts", "approve", str(draft["id"]), "--as", "Camille")
    page_reads = upstream.hits(SIMDJSON_PATH)

    run_cli(config, "poll")

    assert upstream.hits(SIMDJSON_PATH) == page_reads
    detail = client.get(f"/api/drafts/{draft['id']}", headers=CAMILLE).json()
    assert (detail["stale"], detail["source_changes"]) == (False, None)
