"""The review pages as an editor without JavaScript uses them: plain forms, redirects.

Login (password from a file or the environment, throttled, cookie flags), the queue, the
draft page (original and French block by block), editing the title, a block or the body,
approve / reject / retranslate, conflicts between two editors, stale drafts with a diff,
and the audit trail.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import lxml.html
import pytest
from newsroom import (
    COURTS_TITLE,
    MUSK_TITLE,
    PASSWORD,
    SIMDJSON_TITLE,
    Newsroom,
    change_original,
    csrf_of,
    form_values,
    log_in,
)
from servers import dictionary_translate

from aggregator.extraction.extract import text_of
from aggregator.models import Draft, DraftStatus, Entry, EntryState
from aggregator.publishing.credit import source_name
from aggregator.translation.segment import editable_blocks, parse_fragment
from aggregator.translation.typography import french_text
from aggregator.web.app import create_app


class WallClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def page_of(html: str) -> Any:
    return lxml.html.fromstring(html)


def pairs_of(html: str) -> list[tuple[str, str]]:
    """(original text, French text) of each row of the draft page's side-by-side table."""
    rows = page_of(html).find_class("pair")
    return [
        (
            " ".join(row.find_class("original")[0].text_content().split()),
            " ".join(row.find_class("block-view")[0].text_content().split()),
        )
        for row in rows
    ]


# ---------------------------------------------------------------- login


def test_without_a_session_the_queue_answers_401_with_the_login_form(newsroom: Newsroom) -> None:
    client = newsroom.client()

    answer = client.get("/review/")

    assert answer.status_code == 401
    form = form_values(answer.text, "/review/login")
    assert set(form) >= {"csrf", "name", "password", "next"}
    assert "Connectez-vous" in answer.text
    assert answer.headers["cache-control"] == "no-store"


def test_login_sets_an_httponly_samesite_session_cookie(newsroom: Newsroom) -> None:
    client = newsroom.client()
    form = form_values(client.get("/review/login").text, "/review/login")

    answer = client.post("/review/login", data={**form, "name": " Camille ", "password": PASSWORD})

    assert answer.status_code == 303
    assert answer.headers["location"] == "/review/"
    cookies = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        cookies.load(header)
    session = cookies["aggregator_session"]
    assert session["httponly"] is True
    assert session["samesite"].lower() == "lax"
    assert session["path"] == "/"
    assert not session["secure"]  # base_url is http://; https turns it on (next test)
    queue = client.get("/review/")
    assert queue.status_code == 200
    assert page_of(queue.text).find_class("who")[0].text_content() == "Camille"


def test_session_cookie_is_secure_when_the_site_is_https(newsroom: Newsroom) -> None:
    settings = dataclasses.replace(
        newsroom.settings,
        server=dataclasses.replace(newsroom.settings.server, base_url="https://fr.example.org"),
    )
    client = newsroom.client(create_app(settings, newsroom.store))
    client.base_url = client.base_url.copy_with(scheme="https", host="fr.example.org", port=None)
    form = form_values(client.get("/review/login").text, "/review/login")
    answer = client.post("/review/login", data={**form, "name": "Camille", "password": PASSWORD})
    assert "; secure" in answer.headers["set-cookie"].lower()


def test_a_wrong_password_is_refused_and_sets_no_session(newsroom: Newsroom) -> None:
    client = newsroom.client()
    form = form_values(client.get("/review/login").text, "/review/login")

    answer = client.post("/review/login", data={**form, "name": "Camille", "password": "nope"})

    assert answer.status_code == 401
    assert "Nom ou mot de passe incorrect" in answer.text
    assert "aggregator_session" not in answer.headers.get("set-cookie", "")
    assert client.get("/review/").status_code == 401


def test_login_attempts_are_throttled_even_for_the_right_password(newsroom: Newsroom) -> None:
    clock = WallClock()
    client = newsroom.client(newsroom.app(wall_clock=clock))
    form = form_values(client.get("/review/login").text, "/review/login")
    attempts = newsroom.settings.review.login_attempts
    for _ in range(attempts):
        wrong = client.post("/review/login", data={**form, "name": "X", "password": "guess"})
        assert wrong.status_code == 401

    blocked = client.post("/review/login", data={**form, "name": "Camille", "password": PASSWORD})

    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Trop de tentatives" in blocked.text
    clock.now += newsroom.settings.review.login_window
    allowed = client.post("/review/login", data={**form, "name": "Camille", "password": PASSWORD})
    assert allowed.status_code == 303


def test_password_from_the_environment_and_reviewer_names_from_the_config(
    newsroom: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_REVIEW_PASSWORD", "from-the-environment")
    settings = dataclasses.replace(
        newsroom.settings,
        review=dataclasses.replace(newsroom.settings.review, reviewers=("Camille",)),
    )
    client = newsroom.client(create_app(settings, newsroom.store))
    form = form_values(client.get("/review/login").text, "/review/login")

    file_password = {**form, "name": "Camille", "password": PASSWORD}
    stranger = {**form, "name": "Mallory", "password": "from-the-environment"}
    assert client.post("/review/login", data=file_password).status_code == 401  # env wins
    assert client.post("/review/login", data=stranger).status_code == 401
    good = {**form, "name": "Camille", "password": "from-the-environment"}
    assert client.post("/review/login", data=good).status_code == 303


def test_without_any_password_the_desk_says_how_to_enable_it(newsroom: Newsroom) -> None:
    settings = dataclasses.replace(
        newsroom.settings,
        review=dataclasses.replace(newsroom.settings.review, password_file=""),
    )
    client = newsroom.client(create_app(settings, newsroom.store))
    form = form_values(client.get("/review/login").text, "/review/login")

    answer = client.post("/review/login", data={**form, "name": "Camille", "password": ""})

    assert answer.status_code == 401
    assert "AGGREGATOR_REVIEW_PASSWORD" in answer.text
    assert "désactivée" in answer.text


def test_sessions_expire_and_forged_cookies_are_ignored(newsroom: Newsroom) -> None:
    clock = WallClock()
    client = newsroom.client(newsroom.app(wall_clock=clock))
    log_in(client)
    cookie = client.cookies["aggregator_session"]
    body, signature = cookie.split(".")
    # Only the forged cookie travels: the jar must not keep the real one beside it.
    client.cookies.clear()
    client.cookies.set("aggregator_session", body + "." + signature[::-1])
    assert client.get("/review/").status_code == 401
    client.cookies.clear()
    client.cookies.set("aggregator_session", cookie)
    assert client.get("/review/").status_code == 200
    clock.now += newsroom.settings.review.session_lifetime + 1
    assert client.get("/review/").status_code == 401


def test_logout_ends_the_session(newsroom: Newsroom) -> None:
    client = newsroom.client()
    csrf = log_in(client)

    answer = client.post("/review/logout", data={"csrf": csrf})

    assert answer.status_code == 303
    assert client.get("/review/").status_code == 401


# ---------------------------------------------------------------- queue and draft page


def test_the_queue_lists_pending_drafts_oldest_first_with_source_age_and_warnings(
    newsroom: Newsroom,
) -> None:
    pending = [d for d in newsroom.store.list_drafts() if d.status == DraftStatus.PENDING]
    pending.sort(key=lambda d: (d.created_at, d.id))
    oldest = newsroom.redraft(pending[0], warnings=("2 blocks stayed in English",))
    later = oldest.created_at + timedelta(hours=3, minutes=5)
    client = newsroom.client(newsroom.app(now=lambda: later))
    log_in(client)

    page = page_of(client.get("/review/").text)

    rows = page.find_class("queue-row")
    assert len(rows) == len(pending) == 5
    titles = [row.find(".//a").text_content() for row in rows]
    assert titles == [d.title for d in pending]
    first = rows[0]
    assert first.find(".//a").get("href") == f"/review/drafts/{oldest.id}"
    cells = [cell.text_content() for cell in first.findall("td")]
    # The source as the editor named it (a feed's own title when config.toml gives no
    # name): which draft is the oldest depends on which entry the poll drafted first.
    assert source_name(oldest) in cells[1] and (oldest.author or "") in cells[1]
    assert cells[2].strip() == "il y a 3 h"
    assert "2 blocks stayed in English" in cells[3]
    assert "5 à relire" in page.findtext(".//h1/small")


def test_the_draft_page_shows_original_and_french_block_by_block(newsroom: Newsroom) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    log_in(client)

    answer = client.get(f"/review/drafts/{musk.id}")

    assert answer.status_code == 200
    pairs = pairs_of(answer.text)
    source = newsroom.store.get_draft_detail(musk.id).source_html
    originals = [" ".join(text_of(lxml.html.tostring(b, encoding="unicode")).split())
                 for b in editable_blocks(parse_fragment(source))]  # fmt: skip
    assert [original for original, _ in pairs] == originals
    assert len(pairs) >= 8
    for original, french in pairs:
        # The test translator goes word by word: each French block is its original's, set
        # in French typography.
        expected = french_text(dictionary_translate(original))
        assert french == " ".join(expected.split()), original
    document = page_of(answer.text)
    assert document.get_element_by_id("title").get("value") == musk.title
    assert f"Original : {musk.original_title}" in answer.text
    assert "content-security-policy" in answer.headers


def test_editing_the_title_a_block_and_the_body_through_forms(newsroom: Newsroom) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    log_in(client)
    url = f"/review/drafts/{musk.id}"
    page = client.get(url).text

    title_form = form_values(page, f"{url}/title")
    answer = client.post(f"{url}/title", data={**title_form, "title": "Elon Musk veut-il OpenAI ?"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{url}?done=saved"

    page = client.get(answer.headers["location"]).text
    assert "Modification enregistrée." in page
    before = pairs_of(page)
    block_form = form_values(page, f"{url}/blocks/2")
    new_block = 'Un paragraphe <em>corrigé</em> par une relectrice, avec son <a href="https://example.org/">lien</a>.'
    answer = client.post(f"{url}/blocks/2", data={**block_form, "html": new_block})
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("#block-2")

    after = pairs_of(client.get(url).text)
    assert after[2][1] == "Un paragraphe corrigé par une relectrice, avec son lien."
    assert after[:2] == before[:2] and after[3:] == before[3:]
    draft = newsroom.store.get_draft(musk.id)
    assert draft.title == "Elon Musk veut-il OpenAI ?"
    assert "<em>corrigé</em>" in draft.body_html
    assert draft.version == musk.version + 2

    body_form = form_values(client.get(url).text, f"{url}/body")
    body = "<p>Un corps entièrement réécrit.</p><p>Deux paragraphes.</p>"
    assert client.post(f"{url}/body", data={**body_form, "body_html": body}).status_code == 303
    assert newsroom.store.get_draft(musk.id).body_html == body
    events = [
        (e.actor, e.action, e.detail) for e in newsroom.store.get_draft_detail(musk.id).events
    ]
    assert events[-3:] == [
        ("Camille", "edited", "title"),
        ("Camille", "edited", "block 3"),
        ("Camille", "edited", "body"),
    ]


def test_a_block_edit_that_would_break_the_structure_is_refused_and_kept(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    log_in(client)
    url = f"/review/drafts/{musk.id}"
    form = form_values(client.get(url).text, f"{url}/blocks/0")
    typed = "<p>Deux</p><p>paragraphes dans un bloc</p>"

    answer = client.post(f"{url}/blocks/0", data={**form, "html": typed})

    assert answer.status_code == 422
    kept = page_of(answer.text).find_class("kept")[0]
    assert kept.find(".//textarea").text == typed  # what the editor typed is not lost
    assert "<p>" in answer.text and "edit the whole body" in answer.text
    assert newsroom.store.get_draft(musk.id).version == musk.version


def test_approve_publishes_with_the_reviewer_named_and_moves_to_the_next_draft(
    newsroom: Newsroom,
) -> None:
    courts = newsroom.draft(COURTS_TITLE)
    following = next(d for d in newsroom.store.review_queue() if d.id != courts.id)
    client = newsroom.client()
    log_in(client, "Dominique")
    url = f"/review/drafts/{courts.id}"
    form = form_values(client.get(url).text, f"{url}/approve")

    answer = client.post(f"{url}/approve", data=form)

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/review/drafts/{following.id}?done=approved"
    assert "il est publié" in client.get(answer.headers["location"]).text
    approved = newsroom.store.get_draft(courts.id)
    assert approved.status == DraftStatus.APPROVED
    assert approved.reviewed_by == "Dominique"
    feed = client.get("/feeds/published.atom").text
    assert courts.title in feed and "relue par Dominique" in feed


def test_reject_and_retranslate(newsroom: Newsroom) -> None:
    courts, simdjson = newsroom.draft(COURTS_TITLE), newsroom.draft(SIMDJSON_TITLE)
    client = newsroom.client()
    log_in(client)

    reject_url = f"/review/drafts/{courts.id}/reject"
    page = client.get(f"/review/drafts/{courts.id}").text
    assert client.post(reject_url, data=form_values(page, reject_url)).status_code == 303
    retranslate_url = f"/review/drafts/{simdjson.id}/retranslate"
    page = client.get(f"/review/drafts/{simdjson.id}").text
    answer = client.post(retranslate_url, data=form_values(page, retranslate_url))

    assert answer.headers["location"] == f"/review/drafts/{simdjson.id}?done=retranslate"
    assert newsroom.store.get_draft(courts.id).status == DraftStatus.REJECTED
    assert courts.title not in client.get("/feeds/published.atom").text
    with newsroom.store.session() as session:
        entry = session.get_one(Draft, simdjson.id).entry
        assert entry.state == EntryState.EXTRACTED  # the next backlog tick translates it again
        assert entry.next_attempt_at is not None
    rejected_page = client.get(f"/review/drafts/{courts.id}").text
    assert f"/review/drafts/{courts.id}/approve" not in rejected_page  # nothing left to do


def test_two_editors_on_one_draft_one_wins_the_other_is_told_and_loses_nothing(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    url = f"/review/drafts/{musk.id}"
    app = newsroom.app()
    camille, dominique = newsroom.client(app), newsroom.client(app)
    log_in(camille, "Camille")
    log_in(dominique, "Dominique")
    camille_page, dominique_page = camille.get(url).text, dominique.get(url).text

    won = dominique.post(
        f"{url}/title", data={**form_values(dominique_page, f"{url}/title"), "title": "Titre D"}
    )
    lost_title = camille.post(
        f"{url}/title", data={**form_values(camille_page, f"{url}/title"), "title": "Titre C"}
    )
    lost_approval = camille.post(f"{url}/approve", data=form_values(camille_page, f"{url}/approve"))

    assert won.status_code == 303
    assert lost_title.status_code == lost_approval.status_code == 409
    shown = page_of(lost_title.text).text_content()
    assert "Quelqu'un d'autre a modifié ce brouillon" in shown
    assert "by Dominique (edited" in shown  # who changed it, and how
    kept = page_of(lost_title.text).find_class("kept")[0]
    assert kept.find(".//textarea").text == "Titre C"
    draft = newsroom.store.get_draft(musk.id)
    assert (draft.title, draft.status) == ("Titre D", DraftStatus.PENDING)
    assert [e.actor for e in newsroom.store.get_draft_detail(musk.id).events][-1] == "Dominique"


def test_a_stale_draft_is_flagged_with_what_changed_and_can_be_acknowledged(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    change_original(
        newsroom,
        "has offered $97.4 billion",
        "has offered nearly $100 billion",
    )
    stale = newsroom.store.get_draft(musk.id)
    assert stale.stale
    client = newsroom.client()
    log_in(client)

    queue = page_of(client.get("/review/").text)
    flagged = [row for row in queue.find_class("queue-row") if "stale" in row.get("class")]
    assert [row.find(".//a").get("href") for row in flagged] == [f"/review/drafts/{musk.id}"]
    page = client.get(f"/review/drafts/{musk.id}").text
    box = page_of(page).get_element_by_id("stale")
    removed = [li.text_content() for li in box.find_class("diff-removed")]
    added = [li.text_content() for li in box.find_class("diff-added")]
    assert len(removed) == len(added) == 1
    assert "$97.4 billion" in removed[0] and "$97.4 billion" not in added[0]
    assert "nearly $100 billion" in added[0]

    url = f"/review/drafts/{musk.id}/acknowledge"
    answer = client.post(url, data=form_values(page, url))

    assert answer.status_code == 303
    after = newsroom.store.get_draft(musk.id)
    assert not after.stale
    assert after.status == DraftStatus.APPROVED
    assert "the original article changed after review" not in after.warnings
    assert newsroom.store.get_draft_detail(musk.id).events[-1].action == "acknowledged"


def test_retranslating_a_stale_draft_takes_the_changed_original_again(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.approve(MUSK_TITLE)
    change_original(newsroom, "has offered $97.4 billion", "has offered nearly $100 billion")
    client = newsroom.client()
    log_in(client)
    page = client.get(f"/review/drafts/{musk.id}").text
    url = f"/review/drafts/{musk.id}/retranslate"

    assert client.post(url, data=form_values(page, url)).status_code == 303

    with newsroom.store.session() as session:
        draft = session.get_one(Draft, musk.id)
        entry = session.get_one(Entry, draft.entry_id)
        assert (draft.status, entry.state, entry.full_html) == (
            DraftStatus.PENDING,
            EntryState.NEW,
            None,
        )
    # The approved version stays published until the new one is approved.
    assert musk.title in client.get("/feeds/published.atom").text


def test_the_audit_trail_names_who_did_what_and_when(newsroom: Newsroom) -> None:
    courts = newsroom.draft(COURTS_TITLE)
    moment = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    client = newsroom.client(newsroom.app(now=lambda: moment))
    csrf = log_in(client, "Dominique")
    client.post(
        f"/review/drafts/{courts.id}/reject",
        data={"csrf": csrf, "version": str(courts.version)},
    )

    page = page_of(client.get("/review/audit").text)

    first = page.find(".//table[@class='events']/tbody/tr")
    cells = [cell.text_content().strip() for cell in first.findall("td")]
    assert cells[:3] == [f"{moment:%Y-%m-%d %H:%M}", "Dominique", "rejeté"]
    assert courts.title in cells[3]
    drafted = [e for e in newsroom.store.recent_events(500) if e.action == "drafted"]
    assert len(drafted) == 5


def test_unknown_drafts_and_actions_are_404(newsroom: Newsroom) -> None:
    client = newsroom.client()
    csrf = log_in(client)
    assert client.get("/review/drafts/999999").status_code == 404
    musk = newsroom.draft(MUSK_TITLE)
    answer = client.post(
        f"/review/drafts/{musk.id}/publish-now", data={"csrf": csrf, "version": "1"}
    )
    assert answer.status_code == 404


def test_csrf_tokens_differ_between_sessions(newsroom: Newsroom) -> None:
    first, second = newsroom.client(), newsroom.client()
    assert log_in(first) != log_in(second)
    assert csrf_of(first.get("/review/").text) == csrf_of(first.get("/review/audit").text)


def test_after_login_the_editor_lands_on_the_page_asked_for_and_nowhere_else(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    asked = client.get(f"/review/drafts/{musk.id}")
    assert asked.status_code == 401
    form = form_values(asked.text, "/review/login")
    assert form["next"] == f"/review/drafts/{musk.id}"

    landed = client.post("/review/login", data={**form, "name": "Camille", "password": PASSWORD})
    assert landed.headers["location"] == f"/review/drafts/{musk.id}"

    for target in ("https://attacker.example/", "//attacker.example/", "/review/login"):
        other = newsroom.client()
        form = form_values(other.get("/review/login").text, "/review/login")
        answer = other.post(
            "/review/login", data={**form, "name": "Camille", "password": PASSWORD, "next": target}
        )
        assert answer.headers["location"] == "/review/", target
