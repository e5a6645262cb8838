"""A published article stays published until an editor says otherwise: retranslating or
retaking it leaves the approved version in the feeds until the new one is approved, and
withdrawing it (CLI, API, desk) takes it out of the feeds, its page then answering 410.

Real parts: the newsroom's upstream newsletters and LibreTranslate on 127.0.0.1, the real
pipeline, the CLI as a subprocess, the web app over HTTP (its publication cache included).
"""

from __future__ import annotations

import lxml.html
from conftest import run_cli, run_cli_json
from newsroom import (
    COURTS_TITLE,
    MUSK_TITLE,
    TOKENS,
    Newsroom,
    change_original,
    form_values,
    log_in,
)

from aggregator.models import DraftStatus
from aggregator.pipeline import Services, process_backlog

CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}
FEEDS = ("/feeds/published.atom", "/feeds/published.rss", "/feeds/published.json")


def redraft(newsroom: Newsroom) -> None:
    services = Services.build(newsroom.settings, newsroom.store)
    try:
        report = process_backlog(services, retry_failed=True)
    finally:
        services.close()
    assert report.entries["drafted"] >= 1, report


def in_every_feed(client: object, text: str) -> list[bool]:
    return [text in client.get(path).text for path in FEEDS]  # type: ignore[attr-defined]


def test_withdraw_from_the_cli_takes_the_article_out_of_the_feeds_and_its_page_is_gone(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    before = newsroom.client()
    assert before.get(f"/articles/{musk.id}").status_code == 200
    assert in_every_feed(before, musk.title) == [True, True, True]

    result = run_cli(newsroom.config, "drafts", "withdraw", str(musk.id), "--as", "Camille")

    assert f"brouillon {musk.id} retiré des fils" in result.stdout
    client = newsroom.client()
    gone = client.get(f"/articles/{musk.id}")
    assert gone.status_code == 410
    assert "Article retiré" in gone.text and gone.headers["content-type"].startswith("text/html")
    assert in_every_feed(client, musk.title) == [False, False, False]
    shown = run_cli_json(newsroom.config, "drafts", "show", str(musk.id), "--json")
    assert isinstance(shown, dict)
    assert (shown["status"], shown["published"]) == ("withdrawn", False)
    listed = run_cli_json(newsroom.config, "drafts", "list", "--status", "withdrawn", "--json")
    assert isinstance(listed, list) and [d["id"] for d in listed] == [musk.id]
    last = newsroom.store.get_draft_detail(musk.id).events[-1]
    assert (last.action, last.actor) == ("withdrawn", "Camille")
    assert newsroom.client().get("/articles/999999").status_code == 404  # never published


def test_withdraw_through_the_api_and_the_desk_and_only_a_published_draft(
    newsroom: Newsroom,
) -> None:
    musk, courts = newsroom.approve(MUSK_TITLE), newsroom.approve(COURTS_TITLE)
    app = newsroom.app()
    client = newsroom.client(app)
    assert client.get(f"/articles/{musk.id}").status_code == 200  # cached from here on

    answer = client.post(
        f"/api/drafts/{musk.id}/withdraw", headers=CAMILLE, json={"version": musk.version}
    )

    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["article_url"]) == ("withdrawn", None)
    assert client.get(f"/articles/{musk.id}").status_code == 410  # the cache was dropped
    assert in_every_feed(client, musk.title) == [False, False, False]
    again = client.post(f"/api/drafts/{musk.id}/withdraw", headers=CAMILLE, json={"version": 1})
    assert again.status_code == 409  # the version seen is checked, as for every action

    log_in(client)
    html = client.get(f"/review/drafts/{courts.id}").text
    url = f"/review/drafts/{courts.id}/withdraw"
    assert client.post(url, data=form_values(html, url)).status_code == 303
    assert client.get(f"/articles/{courts.id}").status_code == 410
    assert courts.title not in client.get("/feeds/published.atom").text
    page = lxml.html.fromstring(client.get(f"/review/drafts/{courts.id}").text)
    assert page.get_element_by_id("withdrawn") is not None
    assert not [f for f in page.iter("form") if f.get("action") == url]  # nothing left to take out

    pending = newsroom.store.list_drafts(DraftStatus.PENDING)[0]
    refused = client.post(
        f"/api/drafts/{pending.id}/withdraw", headers=CAMILLE, json={"version": pending.version}
    )
    assert refused.status_code == 409
    assert "not published" in refused.json()["error"]
    openapi = client.get("/api/openapi.json").json()
    assert "post" in openapi["paths"]["/api/drafts/{id}/withdraw"]


def test_retranslating_an_approved_article_leaves_it_published_until_the_new_one_is_approved(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    change_original(newsroom, "has offered $97.4 billion", "has offered nearly $100 billion")
    app = newsroom.app()
    client = newsroom.client(app)
    log_in(client)
    html = client.get(f"/review/drafts/{musk.id}").text
    url = f"/review/drafts/{musk.id}/retranslate"
    assert client.post(url, data=form_values(html, url)).status_code == 303
    redraft(newsroom)
    pending = newsroom.store.get_draft(musk.id)
    assert pending.status == DraftStatus.PENDING
    newsroom.store.edit(
        musk.id, actor="Camille", now=pending.updated_at, title="Nouveau titre, pas encore relu"
    )

    article = client.get(f"/articles/{musk.id}")
    assert article.status_code == 200
    assert musk.title in article.text and "pas encore relu" not in article.text
    assert in_every_feed(client, musk.title) == [True, True, True]
    assert in_every_feed(client, "pas encore relu") == [False, False, False]
    page = lxml.html.fromstring(client.get(f"/review/drafts/{musk.id}").text)
    assert page.get_element_by_id("published-version") is not None
    # Rejecting the new version would silently unpublish the old one: withdraw says so.
    assert newsroom.client().post(
        f"/api/drafts/{musk.id}/reject", headers=CAMILLE, json={"version": pending.version + 1}
    ).status_code == 409  # fmt: skip

    current = newsroom.store.get_draft(musk.id)
    approved = client.post(
        f"/api/drafts/{musk.id}/approve", headers=CAMILLE, json={"version": current.version}
    )

    assert approved.status_code == 200, approved.text
    assert "pas encore relu" in client.get(f"/articles/{musk.id}").text
    assert in_every_feed(client, "pas encore relu") == [True, True, True]
    assert in_every_feed(client, musk.title) == [False, False, False]
