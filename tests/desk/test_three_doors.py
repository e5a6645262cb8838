"""One desk, three doors: the same review action gets the same answer whichever way it comes.

Each case of the table runs through the command line (the real ``aggregator`` command),
the JSON API (HTTP with a bearer token) and the review pages (form posts with a login
session and its CSRF token), each on its own copy of the same newsroom. What the draft is
afterwards (status, title, body, version, who reviewed it, its audit trail)
must be the same through the three doors; a refusal must change nothing and say the same
thing, with the same status class from the API and the pages (the CLI exits 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import lxml.html
import pytest
from conftest import run_cli
from newsroom import (
    MUSK_TITLE,
    PASSWORD,
    TOKENS,
    Newsroom,
    Template,
    log_in,
    newsroom_copy,
)

from aggregator.store import Store

REVIEWER = "Camille"
HOSTILE_BODY = '<p onclick="steal()">Corps relu<script>alert(1)</script> et corrigé.</p>'
ONLY_SCRIPT = "<script>alert(1)</script>"
# The no-break spaces of French typography, which an ordinary space would let break apart.
FRENCH_TITLE = "Musk\u00a0: «\u202fOpenAI\u202f», 97,4\u202fmilliards\u202f$\u00a0?"
# What came before, at the same moment in every copy: a conflict's message names it.
EARLIER = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Answer:
    """What a door answered: done, or refused with a message (and an HTTP status)."""

    done: bool
    message: str = ""
    status: int | None = None  # None: the command line, which has exit codes


@dataclass(frozen=True)
class Case:
    """``action``: one of the desk's actions, or "title", "body", "block"; ``value``: the
    edit's text; ``prepare``: what the draft went through before (in every copy alike)."""

    name: str
    action: str
    value: str = ""
    draft_id: int | None = None  # None: the Musk draft
    prepare: Callable[[Store, int], object] = field(default=lambda store, draft_id: None)
    stale: bool = False  # send the version before the last change
    refused: int | None = None  # the HTTP status of the refusal, if refused


def _approve(store: Store, draft_id: int) -> object:
    return store.approve(draft_id, actor="Dominique", now=EARLIER)


def _reject(store: Store, draft_id: int) -> object:
    return store.reject(draft_id, actor="Dominique", now=EARLIER)


def _retitle(store: Store, draft_id: int) -> object:
    return store.edit(draft_id, actor="Dominique", now=EARLIER, title="Titre de Dominique")


CASES = [
    Case("approve", "approve"),
    Case("reject", "reject"),
    Case("withdraw", "withdraw", prepare=_approve),
    Case("retranslate", "retranslate"),
    Case("edit title", "title", "  Musk et  OpenAI, relu "),
    Case("title in French typography", "title", FRENCH_TITLE),
    Case("edit block", "block", "<em>Premier</em> paragraphe relu."),
    Case("body with script and onclick is cleaned", "body", HOSTILE_BODY),
    Case("blank title", "title", "   ", refused=422),
    Case("body with nothing but a script", "body", ONLY_SCRIPT, refused=422),
    Case("block that holds blocks", "block", "<p>un</p><p>deux</p>", refused=422),
    Case("unknown id", "approve", draft_id=999_999, refused=404),
    Case("wrong state", "approve", prepare=_reject, refused=409),
    Case("stale version", "approve", prepare=_retitle, stale=True, refused=409),
]


class Door(Protocol):
    def __call__(self, room: Newsroom, case: Case, draft_id: int, version: int) -> Answer: ...


def through_cli(room: Newsroom, case: Case, draft_id: int, version: int) -> Answer:
    args = ["drafts", case.action, str(draft_id)]
    if case.action in ("title", "body", "block"):
        args = ["drafts", "edit", str(draft_id)]
        value_file = room.config.parent / "value.html"
        value_file.write_text(case.value, encoding="utf-8")
        args += {
            "title": ["--title", case.value],
            "body": ["--body-file", str(value_file)],
            "block": ["--block", "0", str(value_file)],
        }[case.action]
    args += ["--as", REVIEWER, "--if-version", str(version)]
    result = run_cli(room.config, *args, check=False)
    if result.returncode == 0:
        return Answer(True)
    assert result.returncode == 1, result.stderr
    return Answer(False, result.stderr.strip().removeprefix("error: "))


def through_api(room: Newsroom, case: Case, draft_id: int, version: int) -> Answer:
    client = room.client()
    headers = {"Authorization": f"Bearer {TOKENS[REVIEWER]}"}
    edits: dict[str, dict[str, Any]] = {
        "title": {"title": case.value},
        "body": {"body_html": case.value},
        "block": {"blocks": [{"index": 0, "html": case.value}]},
    }
    if case.action in edits:
        body = {"version": version, **edits[case.action]}
        answer = client.patch(f"/api/drafts/{draft_id}", json=body, headers=headers)
    else:
        path = f"/api/drafts/{draft_id}/{case.action}"
        answer = client.post(path, json={"version": version}, headers=headers)
    if answer.status_code == 200:
        return Answer(True)
    return Answer(False, answer.json()["error"], answer.status_code)


def through_pages(room: Newsroom, case: Case, draft_id: int, version: int) -> Answer:
    client = room.client()
    csrf = log_in(client, REVIEWER, PASSWORD)
    form = {"csrf": csrf, "version": str(version)}
    paths = {
        "title": ("title", "title"),
        "body": ("body", "body_html"),
        "block": ("blocks/0", "html"),
    }
    if case.action in paths:
        path, name = paths[case.action]
        form[name] = case.value
    else:
        path = case.action
    answer = client.post(f"/review/drafts/{draft_id}/{path}", data=form)
    if answer.status_code == 303:
        return Answer(True)
    page = lxml.html.fromstring(answer.text)
    # A refused change shows the desk's reason as its detail; an error of the request
    # (an unknown draft) as the page's message.
    shown = page.find_class("detail") or page.find_class("error")
    return Answer(False, shown[0].text_content().strip(), answer.status_code)


DOORS: dict[str, Door] = {"cli": through_cli, "api": through_api, "pages": through_pages}


@pytest.fixture
def rooms(
    tmp_path: Path, newsroom_template: Template, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Newsroom]]:
    """A fresh copy of the newsroom for each door, named after it."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    made: list[Newsroom] = []

    def room(name: str) -> Newsroom:
        (tmp_path / name).mkdir()
        made.append(newsroom_copy(tmp_path / name, newsroom_template))
        return made[-1]

    yield room
    for each in made:
        each.store.close()


def draft_state(room: Newsroom, draft_id: int) -> dict[str, Any]:
    """What an editor sees of a draft (the draft itself and its audit trail); {} if none."""
    found = [d for d in room.store.list_drafts(None) if d.id == draft_id]
    if not found:
        return {}
    detail = room.store.get_draft_detail(draft_id)
    d = detail.draft
    return {
        "status": d.status.value,
        "title": d.title,
        "body_html": d.body_html,
        "version": d.version,
        "reviewed_by": d.reviewed_by,
        "published": d.published,
        "edited": list(d.edited),
        "events": [(e.action, e.actor, e.detail) for e in detail.events],
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_door_gives_the_same_answer(case: Case, rooms: Callable[[str], Newsroom]) -> None:
    answers: dict[str, Answer] = {}
    before: dict[str, dict[str, Any]] = {}
    after: dict[str, dict[str, Any]] = {}
    for name, door in DOORS.items():
        room = rooms(name)
        draft_id = case.draft_id or room.draft(MUSK_TITLE).id
        if case.draft_id is None:
            case.prepare(room.store, draft_id)
            version = room.store.get_draft(draft_id).version - (1 if case.stale else 0)
        else:
            version = 1
        before[name] = draft_state(room, draft_id)
        answers[name] = door(room, case, draft_id, version)
        after[name] = draft_state(room, draft_id)

    if case.refused is None:
        assert all(a.done for a in answers.values()), answers
        assert after["api"] != before["api"]
        assert after["cli"] == after["api"] == after["pages"]
    else:
        assert not any(a.done for a in answers.values()), answers
        assert after == before, "a refused action changed the draft"
        assert answers["cli"].message
        assert answers["cli"].message == answers["api"].message == answers["pages"].message
        assert answers["api"].status == answers["pages"].status == case.refused
    if case.value == FRENCH_TITLE:
        assert after["cli"]["title"] == FRENCH_TITLE
    if case.value == HOSTILE_BODY:
        body = after["cli"]["body_html"]
        assert "Corps relu" in body
        assert "script" not in body and "alert" not in body and "onclick" not in body
