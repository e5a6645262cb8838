"""An editor's work is never lost: a human edit of a title or a block survives every redraft
(the original changed, a retranslation, the changed original taken again). Where the
original of an edited part changed, the edit is kept and flagged with the old and the new
original, on the desk, in ``drafts show --json`` and in the audit trail.

Real parts: the newsroom's Ghost newsletter and LibreTranslate on 127.0.0.1, the real poll
and pipeline, the CLI as a subprocess, the API and the desk over HTTP.
"""

from __future__ import annotations

from typing import Any

import lxml.html
from conftest import run_cli, run_cli_json
from newsroom import MUSK_TITLE, TOKENS, Newsroom, change_original, form_values, log_in

from aggregator.models import DraftStatus
from aggregator.pipeline import Services, process_backlog

CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}
OLD_SENTENCE, NEW_SENTENCE = "has offered $97.4 billion", "has offered nearly $100 billion"


def redraft(newsroom: Newsroom) -> None:
    """The worker's next pass, as the daemon runs it."""
    services = Services.build(newsroom.settings, newsroom.store)
    try:
        report = process_backlog(services, retry_failed=True)
    finally:
        services.close()
    assert report.entries["drafted"] >= 1, report


def api_draft(newsroom: Newsroom, draft_id: int) -> dict[str, Any]:
    answer = newsroom.client().get(f"/api/drafts/{draft_id}", headers=CAMILLE)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def block_index(draft: dict[str, Any], text: str) -> int:
    found = [b["index"] for b in draft["blocks"] if text in b["original_html"]]
    assert len(found) == 1, found
    return int(found[0])


def edit_blocks(newsroom: Newsroom, draft_id: int, blocks: dict[int, str]) -> dict[str, Any]:
    version = api_draft(newsroom, draft_id)["version"]
    answer = newsroom.client().patch(
        f"/api/drafts/{draft_id}",
        headers=CAMILLE,
        json={"version": version, "blocks": [{"index": i, "html": h} for i, h in blocks.items()]},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_an_edited_title_survives_a_redraft_when_the_body_of_the_original_changes(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    run_cli(newsroom.config, "drafts", "edit", str(musk.id), "--title", "Musk et OpenAI : le fond")

    change_original(newsroom, OLD_SENTENCE, NEW_SENTENCE)
    redraft(newsroom)

    shown = run_cli_json(newsroom.config, "drafts", "show", str(musk.id), "--json")
    assert isinstance(shown, dict)
    assert shown["title"] == "Musk et OpenAI : le fond"
    assert "nearly $100 billion" not in shown["body_html"]  # the body is translated anew
    assert shown["edited"] == ["title"]
    assert shown["edit_flags"] == []  # the original's title did not change: nothing to check
    assert shown["review_policy"] == "manual"
    events = newsroom.store.get_draft_detail(musk.id).events
    assert [e.action for e in events][-2:] == ["redrafted", "edit-kept"]
    assert events[-1].detail is not None and "title" in events[-1].detail


def test_an_edited_block_is_kept_and_flagged_when_its_original_changes(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    before = api_draft(newsroom, musk.id)
    changed = block_index(before, OLD_SENTENCE)
    untouched = 0 if changed != 0 else 1
    edit_blocks(
        newsroom, musk.id, {changed: "Bloc revu par Camille.", untouched: "Autre bloc revu."}
    )

    change_original(newsroom, OLD_SENTENCE, NEW_SENTENCE)
    redraft(newsroom)

    after = api_draft(newsroom, musk.id)
    assert after["blocks"][changed]["french_html"] == "Bloc revu par Camille."
    assert after["blocks"][untouched]["french_html"] == "Autre bloc revu."
    assert NEW_SENTENCE in after["blocks"][changed]["original_html"]
    assert sorted(after["edited"]) == sorted([f"block {changed + 1}", f"block {untouched + 1}"])
    [flag] = after["edit_flags"]
    assert (flag["part"], flag["index"]) == (f"block {changed + 1}", changed)
    assert OLD_SENTENCE in flag["old_source"] and NEW_SENTENCE not in flag["old_source"]
    assert NEW_SENTENCE in flag["new_source"]
    assert any(w.startswith(f"block {changed + 1}:") for w in after["warnings"])
    details = [e["detail"] for e in after["events"] if e["action"] == "edit-kept"]
    assert f"edit kept on block {changed + 1}, source changed" in details
    shown = run_cli_json(newsroom.config, "drafts", "show", str(musk.id), "--json")
    assert isinstance(shown, dict) and shown["edit_flags"][0]["part"] == f"block {changed + 1}"

    # The desk shows the old and the new original side by side on that block, and saving
    # the block as it is keeps the edit against the new original.
    client = newsroom.client()
    log_in(client)
    html = client.get(f"/review/drafts/{musk.id}").text
    page = lxml.html.fromstring(html)
    row = page.get_element_by_id(f"flag-block-{changed}")
    assert OLD_SENTENCE in row.find_class("old-source")[0].text_content()
    assert NEW_SENTENCE in row.find_class("new-source")[0].text_content()
    assert "flagged" in page.get_element_by_id(f"block-{changed}").get("class")
    url = f"/review/drafts/{musk.id}/blocks/{changed}"
    assert client.post(url, data=form_values(html, url)).status_code == 303

    settled = api_draft(newsroom, musk.id)
    assert settled["edit_flags"] == []
    assert settled["blocks"][changed]["french_html"] == "Bloc revu par Camille."
    assert not any(w.startswith(f"block {changed + 1}:") for w in settled["warnings"])


def test_a_block_edited_after_approval_survives_taking_the_changed_original(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    changed = block_index(api_draft(newsroom, musk.id), OLD_SENTENCE)
    edit_blocks(newsroom, musk.id, {changed: "Correction faite après publication."})
    change_original(newsroom, OLD_SENTENCE, NEW_SENTENCE)
    client = newsroom.client()
    log_in(client)
    html = client.get(f"/review/drafts/{musk.id}").text
    url = f"/review/drafts/{musk.id}/retranslate"
    assert "Reprendre et retraduire l'original" in html
    assert client.post(url, data=form_values(html, url)).status_code == 303

    redraft(newsroom)

    after = api_draft(newsroom, musk.id)
    assert after["status"] == DraftStatus.PENDING
    assert after["blocks"][changed]["french_html"] == "Correction faite après publication."
    assert [f["part"] for f in after["edit_flags"]] == [f"block {changed + 1}"]
    # Approving is the editor's word on what is flagged: the edit stays, the flag goes.
    version = after["version"]
    answer = newsroom.client().post(
        f"/api/drafts/{musk.id}/approve", headers=CAMILLE, json={"version": version}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["edit_flags"] == []
    article = newsroom.client().get(f"/articles/{musk.id}").text
    assert "Correction faite après publication." in article
