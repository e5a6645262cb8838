"""Entries with no draft, as the editor sees them: skipped ones (the members-only post of the
crafted Ghost feed, with its reason and link), failing ones (an article page that answers
500, then recovers) with their last error, attempts and next try; retried, or translated
from a text the editor pastes. Through the CLI, the JSON API and the review desk, on the
local upstream and LibreTranslate servers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import lxml.html
import pytest
from conftest import DATA_DIR, WriteConfig, run_cli, run_cli_json
from newsroom import GHOST_ORIGIN, PASSWORD, TOKENS, form_values, log_in
from servers import UpstreamServer
from upstream_paths import PAID_PATH, PAID_TITLE, REVIEW, SIMDJSON_PATH, WORDPRESS_PATH

from aggregator import config as config_module
from aggregator.config import Settings
from aggregator.pipeline import Services, process_backlog
from aggregator.store import Store
from aggregator.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}
# The editor's licensed copy of the members-only post, with what a paste drags along.
LICENSED_TEXT = (
    "<p>A year ago I turned on paid subscriptions for this newsletter, and 1,234 readers "
    "chose to pay for it in the first twelve months.</p>"
    '<script>alert("pasted")</script>'
    '<p onclick="steal()">The numbers were better than I expected, and the work was harder '
    "than I thought it would be. Here is what I would do differently next time.</p>"
)


@dataclass
class Site:
    config: Path
    settings: Settings
    store: Store

    def client(self) -> TestClient:
        app = create_app(self.settings, self.store)
        return TestClient(app, base_url=self.settings.server.base_url, follow_redirects=False)

    def process(self) -> None:
        """One pass of the daemon's backlog tick: due entries only, backoff respected."""
        services = Services.build(self.settings, self.store)
        try:
            process_backlog(services)
        finally:
            services.close()


def _site(tmp_path: Path, write_config: WriteConfig, feeds: list[dict[str, str]]) -> Iterator[Site]:
    (tmp_path / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "api-tokens").write_text(
        "".join(f"{name}:{token}\n" for name, token in TOKENS.items()), encoding="utf-8"
    )
    config = write_config(feeds, extra=REVIEW)
    run_cli(config, "poll")
    settings = config_module.load(config)
    store = Store.from_settings(settings)
    try:
        yield Site(config, settings, store)
    finally:
        store.close()


@pytest.fixture
def ghost(tmp_path: Path, write_config: WriteConfig, upstream: UpstreamServer) -> Iterator[Site]:
    """The crafted Ghost newsletter, polled once: two drafts and the members-only post."""
    feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    upstream.add("/rss/", feed.replace(GHOST_ORIGIN, upstream.base_url))
    page = (DATA_DIR / "a-year-of-paid-newsletters.html").read_bytes()
    upstream.add(PAID_PATH, page, content_type="text/html; charset=utf-8")
    yield from _site(
        tmp_path, write_config, [{"url": upstream.url("/rss/"), "name": "The Torment Nexus"}]
    )


@pytest.fixture
def excerpts(tmp_path: Path, write_config: WriteConfig, upstream: UpstreamServer) -> Iterator[Site]:
    """The excerpts feed, polled once while the simdjson article page answers 500."""
    feed = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8")
    upstream.add("/excerpt-only.rss", feed.replace("{base}", upstream.base_url))
    upstream.add(SIMDJSON_PATH, "upstream is down\n", status=500, content_type="text/plain")
    wordpress = (DATA_DIR / "trafilatura_blog.wordpress.com.diverse.html").read_bytes()
    upstream.add(WORDPRESS_PATH, wordpress, content_type="text/html; charset=utf-8")
    yield from _site(
        tmp_path,
        write_config,
        [{"url": upstream.url("/excerpt-only.rss"), "name": "Excerpts Weekly"}],
    )


def entries_cli(site: Site, *args: str) -> list[dict[str, Any]]:
    listed = run_cli_json(site.config, "entries", "list", *args, "--json")
    assert isinstance(listed, list)
    return listed


def conforms(client: TestClient, schema_name: str, value: Any) -> None:
    document = client.get("/api/openapi.json").json()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)


def page_of(html: str) -> Any:
    return lxml.html.fromstring(html)


def row_of(html: str, entry_id: int) -> Any:
    return page_of(html).get_element_by_id(f"entry-{entry_id}")


# ---------------------------------------------------------------- skipped


def test_a_members_only_post_is_shown_as_skipped_with_its_reason_and_link(
    ghost: Site, upstream: UpstreamServer
) -> None:
    skipped = entries_cli(ghost, "--state", "skipped")

    assert [e["title"] for e in skipped] == [PAID_TITLE]
    paid = skipped[0]
    assert paid["state"] == "skipped"
    assert paid["url"] == upstream.url(PAID_PATH)
    assert paid["reason"].startswith("members-only post (Ghost paywall)")
    assert paid["feed"] == "The Torment Nexus"
    assert set(paid) >= {"id", "attempts", "last_error", "next_attempt_at"}
    drafts = run_cli_json(ghost.config, "drafts", "list", "--status", "all", "--json")
    assert isinstance(drafts, list) and len(drafts) == 2
    assert PAID_TITLE not in {d["original_title"] for d in drafts}
    every = entries_cli(ghost, "--state", "all", "--feed", "The Torment Nexus")
    assert {e["state"] for e in every} == {"drafted", "skipped"}
    assert entries_cli(ghost, "--feed", "No Such Feed") == []

    client = ghost.client()
    api = client.get("/api/entries?state=skipped", headers=CAMILLE)
    assert api.status_code == 200, api.text
    conforms(client, "EntryList", api.json())
    assert api.json()["entries"] == skipped  # one serializer for the CLI and the API
    assert client.get("/api/entries?state=paid", headers=CAMILLE).status_code == 422
    assert client.get("/api/entries").status_code == 401

    log_in(client)
    queue = page_of(client.get("/review/").text)
    assert "/review/entries?state=skipped" in [a.get("href") for a in queue.iter("a")]
    desk = client.get("/review/entries?state=skipped")
    assert desk.status_code == 200
    row = row_of(desk.text, paid["id"])
    assert "réservé aux abonnés (paywall Ghost)" in row.find_class("reason")[0].text_content()
    assert row.find_class("stored-reason")[0].text_content() == paid["reason"]
    link = row.find_class("original")[0]
    assert (link.get("href"), link.get("rel")) == (paid["url"], "noopener noreferrer")
    assert row.xpath(".//form[@method='post']/@action") == [
        f"/review/entries/{paid['id']}/retry",
        f"/review/entries/{paid['id']}/text",
    ]


def test_a_licensed_text_pasted_for_a_members_only_post_becomes_a_draft(
    ghost: Site, tmp_path: Path
) -> None:
    [paid] = entries_cli(ghost, "--state", "skipped")
    body = tmp_path / "licensed.html"
    body.write_text(LICENSED_TEXT, encoding="utf-8")

    queued = run_cli(
        ghost.config, "entries", "translate", str(paid["id"]), "--body-file", str(body)
    )
    assert "mise en traduction à partir de votre texte" in queued.stdout
    [pending] = entries_cli(ghost, "--state", "pending")
    assert (pending["id"], pending["full_text_source"]) == (paid["id"], "editor")
    run_cli(ghost.config, "poll")

    drafts = run_cli_json(ghost.config, "drafts", "list", "--status", "all", "--json")
    assert isinstance(drafts, list)
    [draft] = [d for d in drafts if d["original_title"] == PAID_TITLE]
    shown = run_cli_json(ghost.config, "drafts", "show", str(draft["id"]), "--json")
    assert isinstance(shown, dict)
    assert "1,234" in shown["body_html"]  # the pasted text, translated
    assert "script" not in shown["body_html"] and "onclick" not in shown["body_html"]
    assert "pasted" not in shown["body_html"]
    assert entries_cli(ghost, "--state", "skipped") == []


def test_the_desk_takes_a_pasted_text_with_its_csrf_token_and_keeps_a_refused_one(
    ghost: Site,
) -> None:
    [paid] = entries_cli(ghost, "--state", "skipped")
    client = ghost.client()
    log_in(client)
    page = client.get("/review/entries?state=skipped").text
    url = f"/review/entries/{paid['id']}/text"
    fields = form_values(page, url)

    forged = client.post(url, data={"body_html": LICENSED_TEXT})
    refused = client.post(url, data={**fields, "body_html": "<script>only()</script>"})
    taken = client.post(url, data={**fields, "body_html": LICENSED_TEXT})

    assert forged.status_code == 403
    assert refused.status_code == 422
    kept = page_of(refused.text).find_class("kept")[0]
    assert kept.find(".//textarea").text == "<script>only()</script>"
    assert taken.status_code == 303
    assert taken.headers["location"] == "/review/entries?state=pending&done=pasted"
    ghost.process()
    queue = client.get("/review/").text
    assert PAID_TITLE in queue


# ---------------------------------------------------------------- failing


def test_a_page_answering_500_is_listed_as_failing_and_retried_once_it_recovers(
    excerpts: Site, upstream: UpstreamServer
) -> None:
    [failing] = entries_cli(excerpts, "--state", "failing")

    assert failing["title"] == "JSON parsing: simdjson vs. JSON for Modern C++"
    assert failing["state"] == "failing"
    assert failing["attempts"] == 1
    assert "500" in failing["last_error"]
    next_try = datetime.fromisoformat(failing["next_attempt_at"])
    assert next_try > datetime.now(UTC)
    status = run_cli(excerpts.config, "status").stdout
    assert "(1 en échec)" in status  # the French desk's words

    client = excerpts.client()
    api = client.get("/api/entries?state=failing&feed=Excerpts Weekly", headers=CAMILLE)
    assert api.json()["entries"] == [failing]
    log_in(client)
    row = row_of(client.get("/review/entries?state=failing").text, failing["id"])
    assert "500" in row.find_class("last-error")[0].text_content()
    assert row.find_class("attempts")[0].text_content() == "1"
    assert row.find(".//time").get("datetime") == next_try.isoformat()
    assert row.xpath(".//form/@action")[0] == f"/review/entries/{failing['id']}/retry"

    lemire = (DATA_DIR / "trafilatura_lemire.me.json.html").read_bytes()
    upstream.add(SIMDJSON_PATH, lemire, content_type="text/html; charset=utf-8")
    hits = upstream.hits(SIMDJSON_PATH)
    excerpts.process()  # the daemon's tick: the entry's backoff is not over
    assert upstream.hits(SIMDJSON_PATH) == hits
    assert entries_cli(excerpts, "--state", "failing") == [failing]

    retried = run_cli(excerpts.config, "entries", "retry", str(failing["id"]))
    assert f"entrée {failing['id']} remise en file" in retried.stdout
    excerpts.process()

    assert upstream.hits(SIMDJSON_PATH) == hits + 1
    assert entries_cli(excerpts, "--state", "failing") == []
    drafts = run_cli_json(excerpts.config, "drafts", "list", "--json")
    assert isinstance(drafts, list)
    assert failing["title"] in {d["original_title"] for d in drafts}


def test_retry_through_the_api_and_the_desk_needs_write_rights_and_no_draft(
    excerpts: Site,
) -> None:
    [failing] = entries_cli(excerpts, "--state", "failing")
    [drafted] = entries_cli(excerpts, "--state", "drafted")
    client = excerpts.client()
    url = f"/api/entries/{failing['id']}/retry"

    assert client.post(url).status_code == 401
    csrf = log_in(client)
    assert client.post(url).status_code == 403  # a session write without its CSRF token
    answer = client.post(url, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    conforms(client, "Entry", answer.json())
    assert answer.json()["state"] == "failing"  # still failing until it is tried again
    assert datetime.fromisoformat(answer.json()["next_attempt_at"]) <= datetime.now(UTC)
    refused = client.post(f"/api/entries/{drafted['id']}/retry", headers=CAMILLE)
    assert refused.status_code == 409
    assert "already has a draft" in refused.json()["error"]
    assert client.post("/api/entries/999999/retry", headers=CAMILLE).status_code == 404

    page = client.get("/review/entries?state=failing").text
    desk_url = f"/review/entries/{failing['id']}/retry"
    assert client.post(desk_url, data={"csrf": "forged"}).status_code == 403
    done = client.post(desk_url, data=form_values(page, desk_url))
    assert done.status_code == 303
    assert done.headers["location"] == "/review/entries?state=failing&done=retried"
    assert "remise en file" in client.get(done.headers["location"]).text
    [after] = entries_cli(excerpts, "--state", "failing")
    assert datetime.fromisoformat(after["next_attempt_at"]) <= datetime.now(UTC)


def test_the_desk_links_only_to_web_addresses(
    tmp_path: Path, write_config: WriteConfig, upstream: UpstreamServer
) -> None:
    """A feed whose item links to javascript: gets an entry the desk lists, and no link that
    runs a script."""
    feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    hostile = feed.replace(f"{GHOST_ORIGIN}{PAID_PATH}", "javascript:alert(document.cookie)")
    assert hostile != feed
    upstream.add("/rss/", hostile.replace(GHOST_ORIGIN, upstream.base_url))
    sites = _site(tmp_path, write_config, [{"url": upstream.url("/rss/"), "name": "Hostile"}])
    site = next(sites)
    [listed] = [e for e in entries_cli(site, "--state", "all") if e["title"] == PAID_TITLE]
    assert listed["url"] == "javascript:alert(document.cookie)"  # kept as the feed said
    assert listed["state"] in ("skipped", "failing")
    client = site.client()
    log_in(client)

    row = row_of(client.get(f"/review/entries?state={listed['state']}").text, listed["id"])
    sites.close()  # the store's

    assert row.find_class("original")[0].get("href") == "#"
