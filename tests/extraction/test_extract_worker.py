"""Articles are read from their pages in a child process with a deadline: a page that would
keep trafilatura busy for most of a minute is abandoned as its own entry's error, a child
that dies fails only its page, and the other entries are drafted meanwhile. Real pages,
a real child, the real CLI poll against the local upstream and LibreTranslate servers.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import DATA_DIR, children_running, run_cli, run_cli_json
from servers import LibreTranslateServer, UpstreamServer, config_toml

from aggregator.errors import ExtractError
from aggregator.extraction import extract_worker
from aggregator.extraction.extract import extract_article

WORDPRESS = DATA_DIR / "trafilatura_blog.wordpress.com.diverse.html"
LEMIRE = DATA_DIR / "trafilatura_lemire.me.json.html"


def slow_page(paragraphs: int = 50_000) -> bytes:
    """4 MB of paragraphs with links: trafilatura needs most of a minute for it here, and
    many seconds on any machine."""
    body = "".join(
        f"<p>Paragraph {i} says a few words about the sea and <a href='/x{i}'>a link</a>.</p>"
        for i in range(paragraphs)
    )
    page = f"<html><head><title>Long</title></head><body><article>{body}</article></body></html>"
    return page.encode()


def extraction_children() -> set[int]:
    return children_running("aggregator.extraction.extract_worker")


def test_a_page_read_in_the_child_is_the_article_read_here() -> None:
    for page in (WORDPRESS, LEMIRE):
        body = page.read_bytes()
        url = f"https://example.com/{page.stem}"
        assert extract_worker.extract_article(body, url) == extract_article(body, url)
        text = body.decode("utf-8")
        assert extract_worker.extract_article(text, url) == extract_article(text, url)


def test_a_page_past_its_deadline_is_abandoned_and_the_next_one_is_read() -> None:
    started = time.monotonic()
    with pytest.raises(ExtractError, match=r"took longer than 1 s: .*\[fetch\] extract_timeout"):
        extract_worker.extract_article(slow_page(), "https://example.com/long", timeout=1)
    assert time.monotonic() - started < 15  # the child start, then one second

    article = extract_worker.extract_article(WORDPRESS.read_bytes(), "https://example.com/w")

    assert "WordPress" in article.html


def test_an_extraction_child_that_dies_fails_its_page_only() -> None:
    extract_worker.extract_article(WORDPRESS.read_bytes(), "https://example.com/w")
    (child,) = extraction_children()
    outcome: list[BaseException] = []

    def read_slowly() -> None:
        try:
            extract_worker.extract_article(slow_page(), "https://example.com/long", timeout=120)
        except ExtractError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read_slowly)
    worker.start()
    time.sleep(0.5)
    os.kill(child, signal.SIGKILL)  # as a crash in trafilatura, or the OOM killer, would
    worker.join(timeout=60)

    assert [str(e) for e in outcome] == [
        "https://example.com/long: the extraction process died while reading the page "
        "(exit status -9)"
    ]
    assert "WordPress" in extract_worker.extract_article(WORDPRESS.read_bytes(), "https://x/w").html
    assert child not in extraction_children()


def test_a_page_too_slow_to_read_fails_its_entry_and_the_others_are_drafted(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    feed = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8")
    upstream.add("/excerpt-only.rss", feed.replace("{base}", upstream.base_url))
    slow_path = "/articles/json-parsing-simdjson-vs-json-for-modern-c/"
    upstream.add(slow_path, slow_page(), content_type="text/html; charset=utf-8")
    upstream.add(
        "/articles/want-to-see-a-more-diverse-wordpress-contributor-community/",
        WORDPRESS.read_bytes(),
        content_type="text/html; charset=utf-8",
    )
    config = tmp_path / "config.toml"
    feeds = [{"url": upstream.url("/excerpt-only.rss"), "name": "Excerpts Weekly"}]
    text = config_toml(libretranslate.url("/"), feeds, fetch={"extract_timeout": "2s"})
    config.write_text(text, encoding="utf-8")

    started = time.monotonic()
    run_cli(config, "poll")
    took = time.monotonic() - started

    drafts = run_cli_json(config, "drafts", "list", "--json")
    assert isinstance(drafts, list)
    assert [d["original_title"] for d in drafts] == [
        "Want to See a More Diverse WordPress Contributor Community? So Do We."
    ]
    [failing] = run_cli_json(config, "entries", "list", "--state", "failing", "--json")  # type: ignore[misc]
    assert failing["url"].endswith(slow_path)
    assert "reading the article took longer than 2 s" in failing["last_error"]
    assert took < 60, took  # the poll did not wait for trafilatura to finish the page
