"""What a feed's own keys decide, end to end through the CLI's poll: ``include``/``exclude``
rules (an entry they refuse is skipped before its page is read or anything is sent to the
engine), ``translate = "title"`` (only the title is translated; the draft links to the
original) and ``review = "auto"`` (a draft with nothing to look at is published at once,
credited as unreviewed, and withdrawn as any other).

The newsletter is the crafted Ghost feed on the local upstream server; translation is the
local LibreTranslate server, which records every text it was sent.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
import pytest
from conftest import DATA_DIR, WriteConfig, run_cli, run_cli_json
from newsroom import PASSWORD, TOKENS, log_in
from servers import LibreTranslateServer, UpstreamServer
from translation_desk import FEED_PATH, MEMBERS_ONLY_PATH, ghost_feed
from upstream_paths import REVIEW

from aggregator import config as config_module
from aggregator.store import Store
from aggregator.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

MUSK = "Does Elon Musk want to buy OpenAI? Yes and no"  # categories AI, Newsletter
COURTS = "The courts and the executive order"  # category Politics
MEMBERS_ONLY = "Members only: what I learned from a year of paid newsletters"  # Media
COURTS_SENTENCE = "Several judges disagree"
MEMBERS_SENTENCE = "turned on paid subscriptions"
ATOM = "{http://www.w3.org/2005/Atom}"
UNREVIEWED_CREDIT = "Traduction automatique (LibreTranslate), non relue."


@dataclass
class Newsletter:
    """The Ghost newsletter, served with its members-only page, and a config for it."""

    upstream: UpstreamServer
    libretranslate: LibreTranslateServer
    write_config: WriteConfig
    tmp_path: Path

    def configure(self, **feed_keys: Any) -> Path:
        (self.tmp_path / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
        (self.tmp_path / "api-tokens").write_text(
            f"Camille:{TOKENS['Camille']}\n", encoding="utf-8"
        )
        feed = {"url": self.upstream.url(FEED_PATH), "name": "The Torment Nexus", **feed_keys}
        return self.write_config([feed], extra=REVIEW)

    def sent(self) -> str:
        """Everything the engine was asked to translate."""
        return "\n".join(self.libretranslate.texts)


@pytest.fixture
def newsletter(
    tmp_path: Path,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    write_config: WriteConfig,
) -> Newsletter:
    upstream.add(FEED_PATH, ghost_feed(upstream.base_url))
    members_only = (DATA_DIR / "a-year-of-paid-newsletters.html").read_text(encoding="utf-8")
    upstream.add(
        MEMBERS_ONLY_PATH,
        members_only.replace("https://torment-nexus.mathewingram.com", upstream.base_url),
        content_type="text/html; charset=utf-8",
    )
    return Newsletter(upstream, libretranslate, write_config, tmp_path)


@pytest.fixture
def client_of() -> Iterator[Any]:
    """``client_of(config)``: the web app over that config's database."""
    stores: list[Store] = []

    def client(config: Path) -> TestClient:
        settings = config_module.load(config)
        store = Store.from_settings(settings)
        stores.append(store)
        app = create_app(settings, store)
        return TestClient(app, base_url=settings.server.base_url, follow_redirects=False)

    yield client
    for store in stores:
        store.close()


def entries_by_title(config: Path) -> dict[str, dict[str, Any]]:
    listed = run_cli_json(config, "entries", "list", "--state", "all", "--json")
    assert isinstance(listed, list)
    return {entry["title"]: entry for entry in listed}


def drafts_by_title(config: Path, status: str = "all") -> dict[str, dict[str, Any]]:
    listed = run_cli_json(config, "drafts", "list", "--status", status, "--json")
    assert isinstance(listed, list)
    return {draft["original_title"]: draft for draft in listed}


def published_entries(client: TestClient) -> list[lxml.etree._Element]:
    response = client.get("/feeds/published.atom")
    assert response.status_code == 200, response.text
    return lxml.etree.fromstring(response.content).findall(f"{ATOM}entry")


def content_of(entry: lxml.etree._Element) -> str:
    return entry.findtext(f"{ATOM}content") or ""


def links_of(html: str) -> list[tuple[str | None, str]]:
    """(href, text) of every link of an HTML fragment."""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    return [(a.get("href"), a.text_content()) for a in root.iter("a")]


# ---------------------------------------------------------------- include / exclude


def test_excluded_entries_are_skipped_with_the_rule_before_any_fetch_or_translation(
    newsletter: Newsletter, client_of: Any
) -> None:
    config = newsletter.configure(exclude=["title:courts", "category:^media$"])

    run_cli(config, "poll")

    entries = entries_by_title(config)
    assert entries[COURTS]["state"] == "skipped"
    assert entries[COURTS]["reason"] == "excluded by the feed's rule exclude = 'title:courts'"
    members = entries[MEMBERS_ONLY]
    assert members["state"] == "skipped"
    # The category decided before the page was read: not the paywall, and no fetch at all.
    assert members["reason"] == "excluded by the feed's rule exclude = 'category:^media$'"
    assert newsletter.upstream.hits(MEMBERS_ONLY_PATH) == 0
    sent = newsletter.sent()
    for skipped in (COURTS, COURTS_SENTENCE, MEMBERS_ONLY, MEMBERS_SENTENCE):
        assert skipped not in sent
    assert set(drafts_by_title(config)) == {MUSK}
    assert MUSK in sent
    client = client_of(config)
    log_in(client)
    desk = lxml.html.fromstring(client.get("/review/entries?state=skipped").text)
    assert "exclude = 'title:courts'" in desk.text_content()


def test_categories_are_kept_from_the_feed_for_the_rules(newsletter: Newsletter) -> None:
    """The Musk post's categories are "AI" and "Newsletter": a rule matches either."""
    config = newsletter.configure(exclude=["category:^newsletter$"])

    run_cli(config, "poll")

    entries = entries_by_title(config)
    assert entries[MUSK]["state"] == "skipped"
    assert "category:^newsletter$" in entries[MUSK]["reason"]
    assert entries[COURTS]["state"] == "drafted"
    assert MUSK not in newsletter.sent()


def test_an_include_on_the_text_is_decided_once_the_article_is_read(
    newsletter: Newsletter,
) -> None:
    config = newsletter.configure(include=["text:stargate"])

    run_cli(config, "poll")

    entries = entries_by_title(config)
    assert entries[MUSK]["state"] == "drafted"  # its text speaks of Stargate
    assert entries[COURTS]["state"] == "skipped"
    assert entries[COURTS]["reason"] == (
        "excluded: matches none of the feed's rules include = ['text:stargate']"
    )
    assert COURTS not in newsletter.sent() and COURTS_SENTENCE not in newsletter.sent()
    assert set(drafts_by_title(config)) == {MUSK}


# ---------------------------------------------------------------- translate = "title"


def test_title_only_sends_the_title_and_links_to_the_original(
    newsletter: Newsletter, client_of: Any
) -> None:
    config = newsletter.configure(translate="title")

    run_cli(config, "poll")

    # Only titles went to the engine, and no article page was read.
    assert newsletter.libretranslate.texts
    assert set(newsletter.libretranslate.texts) <= {MUSK, COURTS, MEMBERS_ONLY}
    assert newsletter.upstream.hits(MEMBERS_ONLY_PATH) == 0
    drafts = drafts_by_title(config)
    musk = drafts[MUSK]
    assert musk["status"] == "pending" and musk["warnings"] == []
    shown = run_cli_json(config, "drafts", "show", str(musk["id"]), "--json")
    assert isinstance(shown, dict)
    link = (musk["original_url"], MUSK)
    assert links_of(shown["body_html"]) == [link]

    run_cli(config, "drafts", "approve", str(musk["id"]), "--as", "Camille")

    [published] = published_entries(client_of(config))
    assert published.findtext(f"{ATOM}title") == musk["title"]
    content = content_of(published)
    assert links_of(content)[0] == link  # the body, then the credit line's links
    assert "relue par Camille" in content


def test_a_feed_switched_to_title_only_retranslates_to_the_link_not_the_old_text(
    newsletter: Newsletter,
) -> None:
    config = newsletter.configure()
    run_cli(config, "poll")
    musk = drafts_by_title(config)[MUSK]
    config = newsletter.configure(translate="title")
    before = len(newsletter.libretranslate.texts)

    run_cli(config, "drafts", "retranslate", str(musk["id"]))
    run_cli(config, "poll")

    # The title comes from the translation memory: nothing of the article is sent again.
    assert set(newsletter.libretranslate.texts[before:]) <= {MUSK}
    shown = run_cli_json(config, "drafts", "show", str(musk["id"]), "--json")
    assert isinstance(shown, dict)
    assert links_of(shown["body_html"]) == [(musk["original_url"], MUSK)]


# ---------------------------------------------------------------- review = "auto"


def test_auto_review_publishes_a_clean_draft_at_once_and_it_can_be_withdrawn(
    newsletter: Newsletter, client_of: Any
) -> None:
    # The engine loses the inline markup: the Musk post (links, emphasis) gets a warning,
    # the courts post (plain paragraphs) none.
    newsletter.libretranslate.mode = "drop_placeholders"
    config = newsletter.configure(review="auto")

    summary = run_cli(config, "poll").stdout

    assert '1 brouillon publié sans relecture (review = "auto")' in summary
    drafts = drafts_by_title(config)
    courts, musk = drafts[COURTS], drafts[MUSK]
    assert courts["status"] == "approved" and courts["published"] is True
    assert courts["auto_published"] is True and courts["reviewed_by"] is None
    assert musk["warnings"] and musk["status"] == "pending"
    assert musk["auto_published"] is False
    client = client_of(config)
    [published] = published_entries(client)
    assert published.findtext(f"{ATOM}title") == courts["title"]
    assert UNREVIEWED_CREDIT in content_of(published)
    shown = run_cli_json(config, "drafts", "show", str(courts["id"]), "--json")
    assert isinstance(shown, dict)
    assert UNREVIEWED_CREDIT in shown["credit_html"]
    assert "aggregator" in {e["actor"] for e in shown["events"] if e["action"] == "approved"}
    log_in(client)
    page = client.get(f"/review/drafts/{courts['id']}").text
    assert "publié sans relecture" in page

    run_cli(config, "drafts", "withdraw", str(courts["id"]), "--as", "Camille")

    assert published_entries(client) == []
    withdrawn = drafts_by_title(config)[COURTS]
    assert withdrawn["status"] == "withdrawn" and withdrawn["published"] is False


def test_an_editor_approving_an_auto_feed_draft_is_credited_as_a_review(
    newsletter: Newsletter, client_of: Any
) -> None:
    newsletter.libretranslate.mode = "drop_placeholders"
    config = newsletter.configure(review="auto")
    run_cli(config, "poll")
    musk = drafts_by_title(config)[MUSK]

    run_cli(config, "drafts", "approve", str(musk["id"]), "--as", "Camille")

    approved = drafts_by_title(config)[MUSK]
    assert approved["auto_published"] is False and approved["reviewed_by"] == "Camille"
    contents = [content_of(e) for e in published_entries(client_of(config))]
    assert sum("relue par Camille" in c for c in contents) == 1
    assert sum(UNREVIEWED_CREDIT in c for c in contents) == 1
