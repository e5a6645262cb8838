"""An editor's day in Debian's Chromium (Playwright), against `aggregator serve`: edit a
title and a block in the desk, the newsletter changes that paragraph upstream, the CLI
polls, and after a reload the edits are still there, the block flagged with its old and
new original side by side; approve; withdraw the article from the desk and see it leave
the feeds (its page answers 410); find the members-only post and the failing entry on
the entries pages; the public home page lists what is left.

Real parts: the crafted Ghost newsletter (with its members-only post) and the excerpts
feed (one article page answering 500) on the local upstream server, LibreTranslate on
127.0.0.1, `aggregator poll` / `drafts approve` as subprocesses, the server as a process.

Takes docs/review-edit-kept.png, docs/review-entries.png, docs/review-entries-failing.png
and docs/home.png when AGGREGATOR_UPDATE_SCREENSHOTS=1 (as tests/test_browser.py does).
Needs /usr/bin/chromium: skipped without it, failed instead when AGGREGATOR_TEST_STRICT=1.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from browser import (
    DOCS,
    UPDATE_SCREENSHOTS,
    Watch,
    expect,
    log_in,
    new_page,
)
from conftest import DATA_DIR, WriteConfig, aggregator_process, run_cli, run_cli_json
from newsroom import (
    COURTS_TITLE,
    GHOST_ORIGIN,
    MUSK_TITLE,
    PASSWORD,
    SIMDJSON_TITLE,
    TOKENS,
)
from servers import UpstreamServer
from upstream_paths import PAID_PATH, PAID_TITLE, REVIEW, SIMDJSON_PATH, WORDPRESS_PATH

OLD_SENTENCE, NEW_SENTENCE = "has offered $97.4 billion", "has offered nearly $100 billion"
EDITED_TITLE = "Musk veut-il vraiment OpenAI ? Oui et non"
EDITED_BLOCK = "Musk et ses associés proposent 97,4 milliards de dollars, selon la lettre."
VIEWPORT = {"width": 1440, "height": 1000}


@dataclass
class Site:
    config: Path
    base_url: str
    upstream: UpstreamServer
    ghost_feed: str

    def drafts(self) -> dict[str, dict[str, Any]]:
        """Drafts by original title."""
        listed = run_cli_json(self.config, "drafts", "list", "--status", "all", "--json")
        assert isinstance(listed, list)
        return {d["original_title"]: d for d in listed}

    def published_titles(self) -> list[str]:
        body = httpx.get(f"{self.base_url}/feeds/published.atom", trust_env=False).content
        parsed = feedparser.parse(body)
        assert not parsed.bozo, parsed.bozo_exception
        return [entry.title for entry in parsed.entries]


@pytest.fixture
def site(tmp_path: Path, write_config: WriteConfig, upstream: UpstreamServer) -> Iterator[Site]:
    """Two newsletters polled once by the CLI: the Ghost one (two drafts, the members-only
    post skipped) and the excerpts feed (one article page down: a failing entry)."""
    ghost = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    ghost = ghost.replace(GHOST_ORIGIN, upstream.base_url)
    upstream.add("/rss/", ghost)
    paid = (DATA_DIR / "a-year-of-paid-newsletters.html").read_bytes()
    upstream.add(PAID_PATH, paid, content_type="text/html; charset=utf-8")
    excerpts = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8")
    upstream.add("/excerpt-only.rss", excerpts.replace("{base}", upstream.base_url))
    upstream.add(SIMDJSON_PATH, "upstream is down\n", status=500, content_type="text/plain")
    wordpress = (DATA_DIR / "trafilatura_blog.wordpress.com.diverse.html").read_bytes()
    upstream.add(WORDPRESS_PATH, wordpress, content_type="text/html; charset=utf-8")
    (tmp_path / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "api-tokens").write_text(
        "".join(f"{name}:{token}\n" for name, token in TOKENS.items()), encoding="utf-8"
    )
    config = write_config(
        [
            {"url": upstream.url("/rss/"), "name": "The Torment Nexus"},
            {"url": upstream.url("/excerpt-only.rss"), "name": "Excerpts Weekly"},
        ],
        extra=REVIEW,
    )
    run_cli(config, "poll")
    base_url = next(
        line.split("=", 1)[1].strip().strip('"')
        for line in config.read_text(encoding="utf-8").splitlines()
        if line.startswith("base_url")
    )
    yield Site(config, base_url, upstream, ghost)


def keep(page: Any, shot: Path, name: str) -> None:
    """A screenshot that shows a rendered page; copied into docs/ when asked for."""
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if UPDATE_SCREENSHOTS:
        shutil.copyfile(shot, DOCS / name)


def test_an_editors_walk_through_edits_kept_withdrawal_and_entries(
    browser: Any,
    site: Site,
    tmp_path: Path,
) -> None:
    drafts = site.drafts()
    musk, courts = drafts[MUSK_TITLE], drafts[COURTS_TITLE]
    others = [d["id"] for title, d in drafts.items() if title not in (MUSK_TITLE, COURTS_TITLE)]
    run_cli(site.config, "drafts", "approve", str(courts["id"]), *map(str, others))

    with aggregator_process(site.config, site.base_url, "serve"):
        watch = Watch()
        page = new_page(browser, site, watch, viewport=VIEWPORT)
        log_in(page)

        # Edit the title and the block whose original will change.
        page.goto(f"/review/drafts/{musk['id']}")
        row = page.locator(".pair", has=page.locator(".original", has_text=OLD_SENTENCE))
        block_id = row.get_attribute("id")
        assert block_id is not None and block_id.startswith("block-")
        index = int(block_id.removeprefix("block-"))
        page.fill("#title", EDITED_TITLE)
        page.click(".title-form button")
        expect(page.locator("#status")).to_contain_text("enregistré")
        view = page.locator(f"#{block_id} .block-view")
        view.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(EDITED_BLOCK)
        page.keyboard.press("Enter")
        expect(page.locator("#status")).to_contain_text(f"Bloc {index + 1} enregistré")

        # The newsletter rewrites that paragraph; the CLI polls and redrafts.
        site.upstream.add("/rss/", site.ghost_feed.replace(OLD_SENTENCE, NEW_SENTENCE))
        run_cli(site.config, "poll")
        shown = run_cli_json(site.config, "drafts", "show", str(musk["id"]), "--json")
        assert isinstance(shown, dict)
        assert sorted(shown["edited"]) == sorted(["title", f"block {index + 1}"])

        page.reload()
        assert page.locator("#title").input_value() == EDITED_TITLE
        assert page.locator(f"#{block_id} .block-view").inner_text().strip() == EDITED_BLOCK
        expect(page.locator(f"#{block_id}")).to_have_class("pair flagged")
        expect(page.locator(f"#{block_id} .flag")).to_be_visible()
        flag = page.locator(f"#flag-block-{index}")
        expect(flag.locator(".old-source")).to_contain_text(OLD_SENTENCE)
        expect(flag.locator(".new-source")).to_contain_text(NEW_SENTENCE)
        assert NEW_SENTENCE not in flag.locator(".old-source").inner_text()
        flag.evaluate("row => row.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(tmp_path / "edit-kept.png"))
        keep(page, tmp_path / "edit-kept.png", "review-edit-kept.png")

        # Approve: the edits go out as they are, the flag is settled.
        page.locator("form[data-key=a] button").click()
        page.wait_for_url("**done=approved")
        assert EDITED_TITLE in site.published_titles()
        article = httpx.get(f"{site.base_url}/articles/{musk['id']}", trust_env=False)
        assert article.status_code == 200 and EDITED_BLOCK in article.text

        # Withdraw it from the desk: out of the feeds, its page gone.
        page.goto(f"/review/drafts/{musk['id']}")
        page.locator("button.withdraw").click()
        page.wait_for_url(f"**/review/drafts/{musk['id']}?done=*")
        expect(page.locator("#withdrawn")).to_be_visible()
        assert EDITED_TITLE not in site.published_titles()
        assert courts["title"] in site.published_titles()
        gone = page.goto(f"/articles/{musk['id']}")
        assert gone is not None and gone.status == 410
        expect(page.locator("h1")).to_have_text("Article retiré")

        # The entries the editor would not see otherwise.
        page.goto("/review/entries?state=skipped")
        paid = page.locator(".entry-row", has_text=PAID_TITLE)
        expect(paid).to_have_count(1)
        expect(paid.locator(".stored-reason")).to_contain_text("members-only post (Ghost paywall)")
        expect(paid.locator(".reason")).not_to_be_empty()
        page.screenshot(path=str(tmp_path / "entries.png"), full_page=True)
        keep(page, tmp_path / "entries.png", "review-entries.png")
        page.goto("/review/entries?state=failing")
        failing = page.locator(".entry-row", has_text=SIMDJSON_TITLE)
        expect(failing).to_have_count(1)
        expect(failing.locator(".last-error")).to_contain_text("500")
        expect(failing.locator(".attempts")).to_have_text("2")  # each poll retried it
        page.screenshot(path=str(tmp_path / "entries-failing.png"), full_page=True)
        keep(page, tmp_path / "entries-failing.png", "review-entries-failing.png")

        # The public home page: what is still published, newest first.
        home = new_page(browser, site, watch, viewport={"width": 1100, "height": 900})
        home.goto("/")
        titles = home.locator("li.article h2 a").all_inner_texts()
        assert courts["title"] in titles and EDITED_TITLE not in titles
        expect(home.locator("html")).to_have_attribute("lang", "fr")
        home.screenshot(path=str(tmp_path / "home.png"), full_page=True)
        keep(home, tmp_path / "home.png", "home.png")
        assert watch.problems() == []
