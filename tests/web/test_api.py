"""The JSON API: token auth, list/get/update/approve/reject/retranslate, the OpenAPI document
(validated, and every real answer checked against its schemas), and what happens when
two editors change one draft at the same moment, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn
from newsroom import COURTS_TITLE, MUSK_TITLE, TOKENS, Newsroom, free_port, log_in
from openapi_spec_validator import validate
from starlette.routing import Route

from aggregator import config as config_module
from aggregator.models import DraftStatus
from aggregator.polling.parse import ParsedEntry
from aggregator.store import DraftContent, Store
from aggregator.web.app import create_app

CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}
DOMINIQUE = {"Authorization": f"Bearer {TOKENS['Dominique']}"}


def conforms(document: dict[str, Any], schema_name: str, value: Any) -> None:
    """Validate an answer against a schema of the OpenAPI document (refs resolved in it)."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture
def openapi(newsroom: Newsroom) -> dict[str, Any]:
    answer = newsroom.client().get("/api/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def test_the_openapi_document_is_valid_and_covers_every_api_route(
    newsroom: Newsroom, openapi: dict[str, Any]
) -> None:
    validate(openapi)  # raises on any violation of the OpenAPI 3.1 specification
    actions = ("approve", "reject", "retranslate", "acknowledge", "withdraw")
    served = set()
    for route in newsroom.app().routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        path = route.path.replace(":int", "")
        for method in (route.methods or set()) - {"HEAD"}:
            for action in actions if "{action}" in path else ("",):
                served.add((path.replace("{action}", action), method.lower()))
    documented = {
        (path, method)
        for path, operations in openapi["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert served == documented


def test_list_and_get_with_a_token_match_the_documented_schemas(
    newsroom: Newsroom, openapi: dict[str, Any]
) -> None:
    client = newsroom.client()

    listed = client.get("/api/drafts", headers=CAMILLE)
    musk = newsroom.draft(MUSK_TITLE)
    one = client.get(f"/api/drafts/{musk.id}", headers=CAMILLE)
    events = client.get("/api/events?limit=3", headers=CAMILLE)

    assert listed.status_code == one.status_code == events.status_code == 200
    conforms(openapi, "DraftList", listed.json())
    conforms(openapi, "Draft", one.json())
    conforms(openapi, "EventList", events.json())
    assert listed.json()["total"] == 5
    assert {d["status"] for d in listed.json()["drafts"]} == {"pending"}
    detail = one.json()
    assert one.headers["etag"] == f'"v{musk.version}"'
    assert detail["title"] == musk.title
    assert detail["original_title"] == MUSK_TITLE
    assert detail["author"] == "Mathew Ingram"
    assert len(detail["blocks"]) >= 8
    assert detail["blocks"][1] == {
        "index": 1,
        "tag": "h2",
        "original_html": "What the offer says",
        "french_html": "Ce que le offre dit",
    }
    assert [e["action"] for e in detail["events"]] == ["drafted"]
    assert len(events.json()["events"]) == 3
    paged = client.get("/api/drafts?limit=2&offset=1&status=all", headers=CAMILLE).json()
    assert (len(paged["drafts"]), paged["total"]) == (2, 5)
    slug = musk.feed_slug
    by_feed = client.get(f"/api/drafts?feed={slug}", headers=CAMILLE).json()
    assert {d["feed_slug"] for d in by_feed["drafts"]} == {slug}


def test_update_title_blocks_and_body_with_the_version_seen(
    newsroom: Newsroom, openapi: dict[str, Any]
) -> None:
    client = newsroom.client()
    musk = newsroom.draft(MUSK_TITLE)
    url = f"/api/drafts/{musk.id}"

    titled = client.patch(
        url, headers=CAMILLE, json={"version": musk.version, "title": "  Un titre  revu "}
    )
    assert titled.status_code == 200, titled.text
    conforms(openapi, "Draft", titled.json())
    assert titled.json()["title"] == "Un titre revu"
    version = titled.json()["version"]
    assert version == musk.version + 1

    blocks = client.patch(
        url,
        headers={**CAMILLE, "If-Match": f'"v{version}"'},
        json={
            "blocks": [
                {"index": 1, "html": "Ce que dit l'offre"},
                {"index": 3, "html": "Un point <strong>important</strong>"},
            ]
        },
    )
    assert blocks.status_code == 200, blocks.text
    french = [b["french_html"] for b in blocks.json()["blocks"]]
    assert french[1] == "Ce que dit l'offre"
    assert french[3] == "Un point <strong>important</strong>"
    assert blocks.json()["events"][-1] == {
        "action": "edited",
        "actor": "Camille",
        "detail": "blocks 2, 4",
        "at": blocks.json()["events"][-1]["at"],
    }

    body = client.patch(
        url,
        headers=CAMILLE,
        json={"version": blocks.json()["version"], "body_html": "<p>Nouveau corps.</p>"},
    )
    assert body.status_code == 200
    assert newsroom.store.get_draft(musk.id).body_html == "<p>Nouveau corps.</p>"


def test_approve_reject_and_retranslate(newsroom: Newsroom, openapi: dict[str, Any]) -> None:
    client = newsroom.client()
    musk, courts = newsroom.draft(MUSK_TITLE), newsroom.draft(COURTS_TITLE)

    approved = client.post(
        f"/api/drafts/{musk.id}/approve", headers=DOMINIQUE, json={"version": musk.version}
    )
    rejected = client.post(
        f"/api/drafts/{courts.id}/reject",
        headers={**CAMILLE, "If-Match": str(courts.version)},
    )

    assert approved.status_code == rejected.status_code == 200
    conforms(openapi, "Draft", approved.json())
    assert approved.json()["status"] == "approved"
    assert approved.json()["reviewed_by"] == "Dominique"
    assert approved.json()["article_url"] == f"{newsroom.base_url}/articles/{musk.id}"
    assert rejected.json()["status"] == "rejected"
    assert musk.title in client.get("/feeds/published.atom").text

    again = client.post(
        f"/api/drafts/{musk.id}/retranslate",
        headers=CAMILLE,
        json={"version": approved.json()["version"]},
    )
    assert again.status_code == 200
    assert again.json()["status"] == "pending"
    # The approved version stays published until the new one is approved.
    assert musk.title in client.get("/feeds/published.atom").text
    reject_rejected = client.post(
        f"/api/drafts/{courts.id}/approve",
        headers=CAMILLE,
        json={"version": rejected.json()["version"]},
    )
    assert reject_rejected.status_code == 409
    assert "only a pending draft can be approved" in reject_rejected.json()["error"]


def test_a_stale_version_gets_409_naming_who_changed_the_draft(newsroom: Newsroom) -> None:
    client = newsroom.client()
    musk = newsroom.draft(MUSK_TITLE)
    first = client.patch(
        f"/api/drafts/{musk.id}", headers=DOMINIQUE, json={"version": musk.version, "title": "D"}
    )
    assert first.status_code == 200

    late = client.post(
        f"/api/drafts/{musk.id}/approve", headers=CAMILLE, json={"version": musk.version}
    )

    assert late.status_code == 409
    error = late.json()["error"]
    assert f"you sent version {musk.version}, it is now at version {musk.version + 1}" in error
    assert "by Dominique (edited" in error
    assert "Nothing was saved" in error
    after = newsroom.store.get_draft(musk.id)
    assert (after.status, after.title) == (DraftStatus.PENDING, "D")


def test_the_review_session_can_use_the_api_with_its_csrf_header(newsroom: Newsroom) -> None:
    client = newsroom.client()
    csrf = log_in(client)
    musk = newsroom.draft(MUSK_TITLE)

    read = client.get(f"/api/drafts/{musk.id}")
    without = client.patch(f"/api/drafts/{musk.id}", json={"version": 1, "title": "X"})
    with_header = client.patch(
        f"/api/drafts/{musk.id}",
        json={"version": musk.version, "title": "Titre par la session"},
        headers={"X-CSRF-Token": csrf},
    )

    assert read.status_code == 200
    assert without.status_code == 403
    assert "X-CSRF-Token" in without.json()["error"]
    assert with_header.status_code == 200
    assert with_header.json()["events"][-1]["actor"] == "Camille"


# ---------------------------------------------------------------- at the same moment


def seed_draft(store: Store, base: Path) -> int:
    """One feed, one entry, one pending draft, through the store as the pipeline does it."""
    config = base / "config.toml"
    config.write_text(
        f'[database]\nurl = "{store.url}"\n[[feeds]]\nurl = "https://example.com/feed"\n'
        'name = "Example"\n',
        encoding="utf-8",
    )
    settings = config_module.load(config)
    now = datetime.now(UTC)
    store.upgrade()
    store.sync_feeds(settings.feeds, settings, now)
    [feed] = store.claim_due_feeds(now, timedelta(minutes=1), force=True)
    entry = ParsedEntry(
        key="post-1", url="https://example.com/post-1", title="A post", author="Ann",
        published_at=now, updated_at=None, summary_html=None,
        content_html="<p>The text.</p>", content_hash="h1",
    )  # fmt: skip
    store.record_feed_success(
        feed.id, now=now, next_check_at=now, entries=[entry], title="Example",
        site_url=None, etag=None, last_modified=None, body_hash=None, ttl_seconds=None,
    )  # fmt: skip
    [work] = store.claim_entries(now, timedelta(minutes=1), 10)
    store.save_extracted(
        work.id, full_html="<p>The text.</p>", source="feed", language="en", now=now
    )
    return store.save_draft(
        work.id,
        DraftContent("Un billet", "<p>Le texte.</p>", "en", "fr", "libre", 10, 1),
        now=now,
    )


@contextmanager
def running_server(newsroom: Newsroom, database_url: str) -> Iterator[tuple[str, Store]]:
    """The app under uvicorn in a thread, on its own port and database."""
    settings = newsroom.settings
    store = Store(database_url)
    port = free_port()
    app = create_app(settings, store)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)  # waiting for the server to listen, not a timed assertion
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


def race(
    base_url: str, requests: list[tuple[str, str, dict[str, Any], dict[str, str]]]
) -> list[int]:
    """Send all requests at the same moment (a barrier releases them together)."""
    barrier = threading.Barrier(len(requests))

    def one(request: tuple[str, str, dict[str, Any], dict[str, str]]) -> int:
        method, path, body, headers = request
        with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as client:
            barrier.wait()
            return client.request(method, path, json=body, headers=headers).status_code

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


def check_one_winner(newsroom: Newsroom, database_url: str, tmp_path: Path) -> None:
    seeding = Store(database_url)
    try:
        draft_id = seed_draft(seeding, tmp_path)
    finally:
        seeding.close()
    with running_server(newsroom, database_url) as (base_url, store):
        version = store.get_draft(draft_id).version
        requests = [
            ("POST", f"/api/drafts/{draft_id}/approve", {"version": version}, CAMILLE),
            ("PATCH", f"/api/drafts/{draft_id}", {"version": version, "title": "T1"}, DOMINIQUE),
            ("PATCH", f"/api/drafts/{draft_id}", {"version": version, "title": "T2"}, CAMILLE),
            ("POST", f"/api/drafts/{draft_id}/reject", {"version": version}, DOMINIQUE),
            ("POST", f"/api/drafts/{draft_id}/approve", {"version": version}, DOMINIQUE),
            ("PATCH", f"/api/drafts/{draft_id}", {"version": version, "title": "T3"}, CAMILLE),
        ]
        statuses = race(base_url, requests)
        after = store.get_draft_detail(draft_id)

    assert sorted(statuses) == [200] + [409] * 5, statuses
    winner = statuses.index(200)
    assert after.draft.version == version + 1
    assert len(after.events) == 2  # "drafted", then the winner's action only
    expected = {0: "approved", 1: "edited", 2: "edited", 3: "rejected", 4: "approved"}
    assert after.events[-1].action == expected.get(winner, "edited")
    if winner in (1, 2, 5):
        assert after.draft.title == {1: "T1", 2: "T2", 5: "T3"}[winner]


def test_concurrent_changes_on_sqlite_one_wins_the_others_get_409(
    newsroom: Newsroom, tmp_path: Path
) -> None:
    check_one_winner(newsroom, f"sqlite:///{tmp_path / 'race.db'}", tmp_path)


def test_concurrent_changes_on_postgresql_one_wins_the_others_get_409(
    newsroom: Newsroom, tmp_path: Path, postgres_url: str
) -> None:
    check_one_winner(newsroom, postgres_url, tmp_path)
