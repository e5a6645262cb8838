"""Requests that must change nothing: unauthenticated (401), forged or cross-site (403),
oversized (413) and malformed (422), each with a message saying what was wrong; and hostile
HTML, from the source or from an editor, that must never reach a page as markup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import lxml.html
import pytest
from newsroom import HOSTILE_TITLE_START, MUSK_TITLE, TOKENS, Newsroom, form_values, log_in
from sqlalchemy import func, select
from starlette.testclient import TestClient

from aggregator.models import Draft, DraftEvent, Entry

CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}
UI_ACTIONS = ("title", "blocks/0", "body", "approve", "reject", "retranslate", "acknowledge")
HOSTILE_EDIT = (
    "<img src=x onerror=\"alert('edit')\"><a href=\"javascript:alert('edit link')\">lien</a>"
    '<span style="position:fixed;inset:0;background:red">voile</span>'
    "<script>alert('edit script')</script><iframe src=\"javascript:alert(1)\"></iframe>"
)
DANGEROUS_TAGS = {
    "script", "iframe", "object", "embed", "base", "meta", "style", "svg", "math",
    "frame", "frameset", "applet", "template", "noscript", "link",
}  # fmt: skip


def snapshot(newsroom: Newsroom) -> tuple[Any, ...]:
    """Everything a review request could change."""
    with newsroom.store.session() as session:
        drafts = session.execute(
            select(
                Draft.id, Draft.status, Draft.title, Draft.body_html, Draft.version,
                Draft.reviewed_by, Draft.approved_at,
            ).order_by(Draft.id)
        ).all()  # fmt: skip
        events = session.scalar(select(func.count(DraftEvent.id)))
        entries = session.execute(select(Entry.id, Entry.state).order_by(Entry.id)).all()
    return tuple(drafts), events, tuple(entries)


@pytest.fixture
def musk_url(newsroom: Newsroom) -> str:
    return f"/review/drafts/{newsroom.draft(MUSK_TITLE).id}"


@pytest.fixture
def unchanged(newsroom: Newsroom) -> Iterator[None]:
    before = snapshot(newsroom)
    yield
    assert snapshot(newsroom) == before, "a refused request changed the database"


# ---------------------------------------------------------------- 401


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("action", UI_ACTIONS)
def test_review_changes_without_a_session_are_401(
    newsroom: Newsroom, musk_url: str, action: str
) -> None:
    client = newsroom.client()
    answer = client.post(
        f"{musk_url}/{action}", data={"csrf": "x", "version": "1", "title": "Piraté"}
    )
    assert answer.status_code == 401
    shown = lxml.html.fromstring(answer.text).text_content()
    assert "Vous n'êtes pas connecté" in shown
    assert "rien n'a été modifié" in shown


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("method", "suffix", "headers"),
    [
        ("PATCH", "", {}),
        ("POST", "/approve", {}),
        ("POST", "/reject", {"Authorization": "Bearer not-a-real-token-at-all"}),
        ("POST", "/retranslate", {"Authorization": "Basic Y2FtaWxsZTpwdw=="}),
        ("GET", "", {}),
    ],
)
def test_api_without_a_valid_token_is_401(
    newsroom: Newsroom, method: str, suffix: str, headers: dict[str, str]
) -> None:
    draft = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    answer = client.request(
        method, f"/api/drafts/{draft.id}{suffix}", json={"version": 1, "title": "X"},
        headers=headers,
    )  # fmt: skip
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "API token" in answer.json()["error"]
    assert client.get("/api/drafts").status_code == 401


# ---------------------------------------------------------------- 403


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("action", UI_ACTIONS)
def test_review_changes_with_a_forged_csrf_token_are_403(
    newsroom: Newsroom, musk_url: str, action: str
) -> None:
    app = newsroom.app()
    victim, attacker = newsroom.client(app), newsroom.client(app)
    log_in(victim, "Camille")
    attackers_token = log_in(attacker, "Mallory")
    draft = newsroom.draft(MUSK_TITLE)
    for token in ("", "forged", attackers_token):
        answer = victim.post(
            f"{musk_url}/{action}",
            data={"csrf": token, "version": str(draft.version), "title": "Piraté"},
        )
        assert answer.status_code == 403, token
        assert "Jeton de sécurité (CSRF) absent ou invalide" in answer.text


@pytest.mark.usefixtures("unchanged")
def test_a_cross_site_post_is_refused_even_with_a_valid_token(
    newsroom: Newsroom, musk_url: str
) -> None:
    client = newsroom.client()
    log_in(client)
    form = form_values(client.get(musk_url).text, f"{musk_url}/approve")
    answer = client.post(
        f"{musk_url}/approve", data=form, headers={"Origin": "https://attacker.example"}
    )
    assert answer.status_code == 403
    assert "cross-site request refused" in answer.text


@pytest.mark.usefixtures("unchanged")
def test_login_without_its_form_token_is_403(newsroom: Newsroom) -> None:
    from newsroom import PASSWORD

    client = newsroom.client()
    answer = client.post(
        "/review/login", data={"name": "Camille", "password": PASSWORD, "csrf": "guess"}
    )
    assert answer.status_code == 403
    assert "aggregator_session" not in answer.headers.get("set-cookie", "")


@pytest.mark.usefixtures("unchanged")
def test_api_writes_with_the_session_cookie_need_the_csrf_header(newsroom: Newsroom) -> None:
    client = newsroom.client()
    log_in(client)
    draft = newsroom.draft(MUSK_TITLE)
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        answer = client.post(
            f"/api/drafts/{draft.id}/approve", json={"version": draft.version}, headers=headers
        )
        assert answer.status_code == 403
        assert "CSRF" in answer.json()["error"]


# ---------------------------------------------------------------- 413


def _too_big(newsroom: Newsroom) -> int:
    return newsroom.settings.review.max_body_bytes + 1


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("streamed", [False, True])
def test_oversized_review_forms_are_413(newsroom: Newsroom, musk_url: str, streamed: bool) -> None:
    client = newsroom.client()
    csrf = log_in(client)
    draft = newsroom.draft(MUSK_TITLE)
    body = f"csrf={csrf}&version={draft.version}&body_html=".encode() + b"a" * _too_big(newsroom)
    content: Any = iter([body[:1000], body[1000:]]) if streamed else body
    answer = client.post(
        f"{musk_url}/body",
        content=content,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert (
        "too large" in answer.text and str(newsroom.settings.review.max_body_bytes) in answer.text
    )


@pytest.mark.usefixtures("unchanged")
def test_oversized_api_bodies_are_413(newsroom: Newsroom) -> None:
    draft = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    answer = client.patch(
        f"/api/drafts/{draft.id}",
        headers=CAMILLE,
        json={"version": draft.version, "body_html": "<p>" + "a" * _too_big(newsroom) + "</p>"},
    )
    assert answer.status_code == 413
    assert "too large" in answer.json()["error"]


# ---------------------------------------------------------------- 422


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"title": "x"}', "application/json", "send an HTML form"),
        (b"csrf=TOKEN&version=1&title=\xff\xfe", None, "not valid UTF-8"),
        (b"csrf=TOKEN&version=1&title=a&title=b", None, "'title' is given more than once"),
        (b"csrf=TOKEN&version=latest&title=a", None, "version number"),
        (b"csrf=TOKEN&title=a", None, "version number"),
        (b"csrf=TOKEN&version=VERSION&title=%20%20", None, "the title is empty"),
    ],
)
def test_malformed_review_forms_are_422(
    newsroom: Newsroom, musk_url: str, content: bytes, content_type: str | None, message: str
) -> None:
    client = newsroom.client()
    csrf = log_in(client)
    draft = newsroom.draft(MUSK_TITLE)
    body = content.replace(b"TOKEN", csrf.encode()).replace(b"VERSION", str(draft.version).encode())
    answer = client.post(
        f"{musk_url}/title",
        content=body,
        headers={"Content-Type": content_type or "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 422, answer.text
    assert message in lxml.html.fromstring(answer.text).text_content()


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{not json", {}, "not valid JSON"),
        (b"[1, 2]", {}, "send a JSON object, not a JSON list"),
        (b"", {}, "body is empty"),
        (b'{"version": VERSION, "title": 5}', {}, "'title' must be a string"),
        (b'{"version": VERSION, "status": "approved"}', {}, "unknown field 'status'"),
        (b'{"title": "x"}', {}, "say which version"),
        (b'{"version": "v-latest", "title": "x"}', {}, "version number"),
        (b'{"version": true, "title": "x"}', {}, "version number"),
        (b'{"title": "x"}', {"If-Match": "*"}, "If-Match must be the draft's version"),
        (b'{"version": VERSION, "title": "x"}', {"If-Match": '"v999"'}, "If-Match says"),
        (b'{"version": VERSION}', {}, "nothing to change"),
        (b'{"version": VERSION, "blocks": []}', {}, "non-empty list"),
        (b'{"version": VERSION, "blocks": [{"index": 999, "html": "x"}]}', {}, "does not exist"),
        (b'{"version": VERSION, "blocks": [{"index": 0}]}', {}, "'blocks[0]' must be"),
        (b'{"version": VERSION, "blocks": [{"index": 0, "html": "<p>a</p><p>b</p>"}]}', {},
         "inline markup only"),
        (b'{"version": VERSION, "blocks": [{"index": 0, "html": "<script>x</script>"}]}', {},
         "would be empty"),
        (b'{"version": VERSION, "body_html": "<script>alert(1)</script>"}', {}, "no text left"),
        (b'{"version": VERSION, "body_html": "<p>a</p>", "blocks": [{"index": 0, "html": "b"}]}',
         {}, "not both"),
    ],
)  # fmt: skip
def test_malformed_api_requests_are_422(
    newsroom: Newsroom, body: bytes, headers: dict[str, str], message: str
) -> None:
    draft = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    answer = client.patch(
        f"/api/drafts/{draft.id}",
        content=body.replace(b"VERSION", str(draft.version).encode()),
        headers={**CAMILLE, "Content-Type": "application/json", **headers},
    )
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]


@pytest.mark.usefixtures("unchanged")
def test_malformed_query_parameters_are_422(newsroom: Newsroom) -> None:
    client = newsroom.client()
    for query in ("status=published", "limit=0", "limit=abc", "offset=-1"):
        answer = client.get(f"/api/drafts?{query}", headers=CAMILLE)
        assert answer.status_code == 422, query
        assert "must be" in answer.json()["error"]


# ---------------------------------------------------------------- hostile HTML


def assert_no_active_content(html: str, *, our_scripts: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    page = lxml.html.fromstring(html)
    for element in page.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "script":
            assert element.get("src") in our_scripts and not (element.text or "").strip()
            continue
        if element.tag == "link":
            assert element.get("rel") in ("stylesheet", "alternate", "canonical")
            assert (element.get("href") or "").startswith(("/", "http")), element.attrib
            continue
        if element.tag == "meta":
            assert element.get("http-equiv") is None
            continue
        assert element.tag not in DANGEROUS_TAGS, lxml.html.tostring(element)[:200]
        assert "style" not in element.attrib, element.attrib
        assert not [name for name in element.attrib if name.startswith("on")], element.attrib
        for name in ("href", "src", "action", "formaction", "cite", "srcdoc", "data", "xlink:href"):
            value = "".join((element.get(name) or "").split()).lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), element.attrib
        if element.tag == "form":
            assert (element.get("action") or "").startswith("/review/"), element.attrib


def _client_with_hostile_draft_approved(newsroom: Newsroom) -> tuple[TestClient, int]:
    draft = newsroom.approve(HOSTILE_TITLE_START)
    client = newsroom.client()
    log_in(client)
    return client, draft.id


def test_hostile_source_reaches_no_page_as_markup(newsroom: Newsroom) -> None:
    client, draft_id = _client_with_hostile_draft_approved(newsroom)

    review = client.get(f"/review/drafts/{draft_id}")
    article = client.get(f"/articles/{draft_id}")
    queue = client.get("/review/")

    for page in (review, article, queue):
        assert page.status_code == 200
        assert_no_active_content(page.text, our_scripts={"/static/review.js"})
    text = lxml.html.fromstring(article.text).text_content()
    assert "le public argent" in text  # the translated article is there, as text
    assert '<img src=x onerror=alert("title")>' in text  # the hostile title, shown as text
    assert "Mallory" in text


def test_hostile_html_written_straight_into_the_database_is_sanitized_at_render(
    newsroom: Newsroom,
) -> None:
    """Whatever a past version, a migration or a person left in the database."""
    raw = (
        '<p onmouseover="alert(1)">Texte <a href="javascript:alert(2)">lien</a></p>'
        "<script>alert(3)</script><iframe srcdoc='<script>alert(4)</script>'></iframe>"
        '<form action="https://attacker.example/"><button>Go</button></form>'
        "<style>*{display:none}</style><svg onload=alert(5)></svg>"
        '<p><img src="data:image/svg+xml,<svg onload=alert(6)>"></p>'
    )
    draft = newsroom.redraft(
        newsroom.draft(MUSK_TITLE),
        full_html=raw,
        body_html=raw,
        title="<script>alert('title')</script>",
    )
    # The public sees the copy taken at approval: it is hostile too.
    newsroom.store.approve(draft.id, actor="Camille", now=draft.updated_at)
    client = newsroom.client()
    log_in(client)

    for path in (f"/articles/{draft.id}", f"/review/drafts/{draft.id}"):
        page = client.get(path)
        assert page.status_code == 200
        assert_no_active_content(page.text, our_scripts={"/static/review.js"})
        assert "Texte" in page.text
    for fmt in ("atom", "rss", "json"):
        feed = client.get(f"/feeds/published.{fmt}").text
        if fmt == "json":  # a JSON Feed title is plain text; the HTML is content_html
            feed = json.dumps([item["content_html"] for item in json.loads(feed)["items"]])
        for needle in ("<script", "onmouseover", "javascript:", "<iframe", "<form", "<svg"):
            assert needle not in feed, (fmt, needle)


def test_an_editors_hostile_edit_is_sanitized_when_saved_and_shown(newsroom: Newsroom) -> None:
    draft = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    answer = client.patch(
        f"/api/drafts/{draft.id}",
        headers=CAMILLE,
        json={
            "version": draft.version,
            "title": "<b onclick=alert(1)>Titre</b>",
            "blocks": [{"index": 0, "html": "Texte modifié " + HOSTILE_EDIT}],
        },
    )
    assert answer.status_code == 200, answer.text
    stored = newsroom.store.get_draft(draft.id)
    assert stored.title == "<b onclick=alert(1)>Titre</b>"  # a title is text, escaped on output
    for needle in ("onerror", "javascript:", "style=", "<script", "<iframe"):
        assert needle not in stored.body_html, needle
    assert "voile" in stored.body_html and "Texte modifié" in stored.body_html
    newsroom.approve(MUSK_TITLE)
    log_in(client)
    for path in (f"/articles/{draft.id}", f"/review/drafts/{draft.id}"):
        assert_no_active_content(client.get(path).text, our_scripts={"/static/review.js"})


def test_pages_carry_a_content_security_policy_and_no_store(newsroom: Newsroom) -> None:
    client, draft_id = _client_with_hostile_draft_approved(newsroom)
    review = client.get(f"/review/drafts/{draft_id}")
    article = client.get(f"/articles/{draft_id}")
    assert "script-src 'self'" in review.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in review.headers["content-security-policy"]
    assert review.headers["cache-control"] == "no-store"
    assert "script-src" not in article.headers["content-security-policy"]  # none at all
    assert article.headers["x-content-type-options"] == "nosniff"
