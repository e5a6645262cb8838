"""Where a feed's articles are taken from, set per feed: ``full_text`` ("auto", "feed",
"page"), ``selector`` (the article's element in the page) and ``remove`` (the site's own
blocks left out). Local upstream and LibreTranslate servers, the real CLI poll; assertions
on the drafts' original blocks as ``drafts show --json`` gives them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lxml.html
import pytest
from conftest import DATA_DIR, WriteConfig, run_cli, run_cli_json
from newsroom import MUSK_TITLE
from servers import UpstreamServer, dictionary_translate
from translation_desk import feed_bodies, ghost_feed
from upstream_paths import COURTS_PATH, MUSK_PATH, PAID_PATH

SIMDJSON_PATH = "/articles/json-parsing-simdjson-vs-json-for-modern-c/"
WORDPRESS_PATH = "/articles/want-to-see-a-more-diverse-wordpress-contributor-community/"
SIMDJSON_TITLE = "JSON parsing: simdjson vs. JSON for Modern C++"
SIMDJSON_EXCERPT = "How fast is simdjson compared with one of the nicest C++ JSON libraries?"
SIMDJSON_OPENING = "JSON is the ubiquitous data format on the Internet."
# In the page's "Published by" box, which trafilatura leaves out of the article.
AUTHOR_BIO = "A computer science professor at the University of Quebec (TELUQ)."
# In the page's table of benchmarks, which trafilatura keeps.
TABLE_CELL = "apache_builds"

MUSK_QUOTE = "It is time for OpenAI to return to the open-source"
# Only in the article pages written below, never in the feed.
PAGE_ONLY = "The page of this post was updated after the newsletter went out, on the Friday."


def serve_excerpts(upstream: UpstreamServer) -> str:
    """The excerpt-only feed and its two real article pages; the feed's URL."""
    feed = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8")
    feed = feed.replace("{base}", upstream.base_url)
    assert SIMDJSON_EXCERPT in feed
    for path, page in (
        (SIMDJSON_PATH, "trafilatura_lemire.me.json.html"),
        (WORDPRESS_PATH, "trafilatura_blog.wordpress.com.diverse.html"),
    ):
        upstream.add(path, (DATA_DIR / page).read_bytes(), content_type="text/html")
    return upstream.add("/excerpt-only.rss", feed)


def serve_ghost(upstream: UpstreamServer) -> str:
    """The Ghost newsletter, whose feed holds each whole post, and the posts' pages (with
    one paragraph more than the feed); the feed's URL."""
    feed = ghost_feed(upstream.base_url)
    for path, body in zip((MUSK_PATH, COURTS_PATH), feed_bodies(feed), strict=False):
        page = (
            "<!DOCTYPE html><html lang='en'><head><title>The Torment Nexus</title></head>"
            f"<body><main><article><p>{PAGE_ONLY}</p>{body}</article></main></body></html>"
        )
        upstream.add(path, page, content_type="text/html")
    members = (DATA_DIR / "a-year-of-paid-newsletters.html").read_bytes()
    upstream.add(PAID_PATH, members, content_type="text/html")
    return upstream.add("/rss/", feed)


def drafts_by_title(config: Path) -> dict[str, dict[str, Any]]:
    """Each draft in full (``drafts show --json``), by its original title."""
    listed = run_cli_json(config, "drafts", "list", "--status", "all", "--json")
    assert isinstance(listed, list)
    shown = {}
    for summary in listed:
        draft = run_cli_json(config, "drafts", "show", str(summary["id"]), "--json")
        assert isinstance(draft, dict)
        shown[summary["original_title"]] = draft
    return shown


def original_text(draft: dict[str, Any]) -> str:
    """The English the draft was translated from, block after block."""
    return " ".join(
        lxml.html.fragment_fromstring(block["original_html"], create_parent="div").text_content()
        for block in draft["blocks"]
    )


def entries_by_title(config: Path) -> dict[str, dict[str, Any]]:
    listed = run_cli_json(config, "entries", "list", "--json")
    assert isinstance(listed, list)
    return {entry["title"]: entry for entry in listed}


def test_full_text_feed_translates_the_feeds_excerpt_and_reads_no_page(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    feed_url = serve_excerpts(upstream)
    config = write_config([{"url": feed_url, "name": "Excerpts", "full_text": "feed"}])

    run_cli(config, "poll")

    assert upstream.hits(SIMDJSON_PATH) == upstream.hits(WORDPRESS_PATH) == 0
    entries = entries_by_title(config)
    assert {e["full_text_source"] for e in entries.values()} == {"feed"}
    # The excerpt, in French, is the whole draft (French typography adds a narrow space).
    french = drafts_by_title(config)[SIMDJSON_TITLE]["body_html"].replace("\u202f", "")
    assert french == dictionary_translate(SIMDJSON_EXCERPT)


@pytest.mark.parametrize(
    ("full_text", "pages_read", "source"), [("auto", 0, "feed"), ("page", 1, "page")]
)
def test_full_text_page_reads_the_page_even_when_the_feed_holds_the_whole_post(
    upstream: UpstreamServer,
    write_config: WriteConfig,
    full_text: str,
    pages_read: int,
    source: str,
) -> None:
    feed_url = serve_ghost(upstream)
    config = write_config([{"url": feed_url, "name": "Nexus", "full_text": full_text}])

    run_cli(config, "poll")

    assert upstream.hits(MUSK_PATH) == upstream.hits(COURTS_PATH) == pages_read
    assert entries_by_title(config)[MUSK_TITLE]["full_text_source"] == source
    text = original_text(drafts_by_title(config)[MUSK_TITLE])
    assert MUSK_QUOTE in text
    assert (PAGE_ONLY in text) == (full_text == "page")


def test_remove_drops_the_named_blocks_from_the_feeds_own_text(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    feed_url = serve_ghost(upstream)
    config = write_config([{"url": feed_url, "name": "Nexus", "remove": ["blockquote"]}])

    run_cli(config, "poll")

    assert upstream.hits(MUSK_PATH) == 0
    text = original_text(drafts_by_title(config)[MUSK_TITLE])
    assert MUSK_QUOTE not in text
    assert "That is how Musk put it in a statement." in text  # the paragraph after it stays


def test_selector_takes_the_named_element_and_remove_drops_blocks_from_the_page(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    feed_url = serve_excerpts(upstream)
    config = write_config(
        [
            {
                "url": feed_url,
                "name": "Excerpts",
                "selector": "article.post",
                "remove": ["table", ".author-avatar"],
            }
        ]
    )

    run_cli(config, "poll")

    draft = drafts_by_title(config)[SIMDJSON_TITLE]
    text = original_text(draft)
    assert text.startswith(SIMDJSON_OPENING)  # the page's title heading is not repeated
    assert AUTHOR_BIO in text  # in the selected element, where trafilatura sees none
    assert TABLE_CELL not in text  # removed
    assert "gravatar" not in " ".join(b["original_html"] for b in draft["blocks"])
    # The WordPress.com page has no <article>: that entry fails, saying why, to be retried.
    wordpress = next(
        e for e in entries_by_title(config).values() if e["url"].endswith(WORDPRESS_PATH)
    )
    assert wordpress["state"] == "failing"
    assert wordpress["last_error"] == (
        f"{upstream.url(WORDPRESS_PATH)}: the feed's selector 'article.post' matches nothing"
        " in the page"
    )
    assert wordpress["next_attempt_at"] is not None
