"""The API validates requests with the very schemas /api/openapi.json publishes: a body the
document accepts is taken, one it refuses gets 422 naming the field, and every documented
bound of a query parameter is the one enforced."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from newsroom import MUSK_TITLE, READ_TOKEN, TOKENS, Newsroom

CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}
READER = {"Authorization": f"Bearer {READ_TOKEN}"}

# Changes to a draft, each on top of a version and a title that the desk accepts: whether
# one is refused for its shape depends on the document's DraftUpdate schema alone.
CHANGES: list[dict[str, Any]] = [
    {},
    {"title": 5},
    {"title": None, "body_html": "<p>Un corps revu.</p>"},
    {"body_html": ["<p>a</p>"]},
    {"blocks": []},
    {"blocks": [{"index": 0, "html": "Un bloc revu"}]},
    {"blocks": [{"index": "1", "html": "Un bloc"}]},
    {"blocks": [{"index": -1, "html": "Un bloc"}]},
    {"blocks": [{"index": 1}]},
    {"blocks": [{"index": 1, "html": "Un bloc", "tag": "p"}]},
    {"blocks": {"index": 1, "html": "Un bloc"}},
    {"version": "VERSION"},
    {"version": -1},
    {"version": True},
    {"status": "approved"},
]


def document_schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def test_a_change_is_refused_exactly_when_the_published_schema_refuses_it(
    newsroom: Newsroom,
) -> None:
    client = newsroom.client()
    document = client.get("/api/openapi.json").json()
    schema = document_schema(document, "DraftUpdate")
    musk = newsroom.draft(MUSK_TITLE)
    for change in CHANGES:
        version = client.get(f"/api/drafts/{musk.id}", headers=CAMILLE).json()["version"]
        body = {"version": version, "title": f"Titre {version}"} | change
        if body["version"] == "VERSION":
            body["version"] = str(version)
        documented = jsonschema.Draft202012Validator(schema).is_valid(body)

        answer = client.patch(f"/api/drafts/{musk.id}", headers=CAMILLE, json=body)

        assert answer.status_code == (200 if documented else 422), (change, answer.text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"blocks": [{"index": -1, "html": "x"}]}, '\'blocks[0]\' must be {"index": …, "html"'),
        ({"blocks": [{"index": -1, "html": "x"}]}, "('index' must be at least 0)"),
        ({"blocks": [{"index": 2, "html": "x"}, {"index": 2, "html": "y"}]}, "same block twice"),
        ({"title": ["a"]}, "'title' must be a string, got ['a']"),
        ({"version": 2.5}, "'version' must be the draft's version number"),
        ({"body": "x"}, "unknown field 'body'; this request takes version, title, body_html"),
    ],
)
def test_a_refused_change_names_the_field_and_changes_nothing(
    newsroom: Newsroom, change: dict[str, Any], message: str
) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    body = {"version": musk.version} | change

    answer = newsroom.client().patch(f"/api/drafts/{musk.id}", headers=CAMILLE, json=body)

    assert answer.status_code == 422
    assert answer.json() == {"error": answer.json()["error"], "status": 422}
    assert message in answer.json()["error"]
    assert newsroom.store.get_draft(musk.id).version == musk.version


def test_query_parameters_are_bounded_as_documented(newsroom: Newsroom) -> None:
    client = newsroom.client()
    document = client.get("/api/openapi.json").json()
    for path, name in (("/api/drafts", "limit"), ("/api/events", "limit")):
        [parameter] = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
        highest = parameter["schema"]["maximum"]
        taken = client.get(f"{path}?{name}={highest}", headers=CAMILLE)
        refused = client.get(f"{path}?{name}={highest + 1}", headers=CAMILLE)
        assert taken.status_code == 200, taken.text
        assert refused.status_code == 422
        assert f"'{name}' must be at most {highest}, got '{highest + 1}'" in refused.json()["error"]
    [state_parameter] = [
        p for p in document["paths"]["/api/entries"]["get"]["parameters"] if p["name"] == "state"
    ]
    states = state_parameter["schema"]["enum"]
    for state in states:
        assert client.get(f"/api/entries?state={state}", headers=CAMILLE).status_code == 200
    unknown = client.get("/api/entries?state=lost", headers=CAMILLE)
    assert unknown.status_code == 422
    assert (
        "'state' must be 'skipped', 'failing', 'pending', 'drafted' or 'all'"
        in (unknown.json()["error"])
    )


def test_an_action_takes_no_body_a_version_or_nothing_else(newsroom: Newsroom) -> None:
    client = newsroom.client()
    musk = newsroom.draft(MUSK_TITLE)
    url = f"/api/drafts/{musk.id}"

    extra = client.post(f"{url}/approve", headers=CAMILLE, json={"version": 1, "force": True})
    misspelt = client.post(f"{url}/aprove", headers=CAMILLE, json={"version": musk.version})
    read_only = client.post(f"{url}/approve", headers=READER, json={"version": musk.version})
    by_header = client.post(f"{url}/approve", headers={**CAMILLE, "If-Match": f'"v{musk.version}"'})

    assert (extra.status_code, misspelt.status_code, read_only.status_code) == (422, 404, 403)
    assert "unknown field 'force'" in extra.json()["error"]
    assert "no such action 'aprove': one of approve, reject" in misspelt.json()["error"]
    assert "scope 'read'" in read_only.json()["error"]
    assert by_header.status_code == 200, by_header.text
    assert by_header.json()["status"] == "approved"
    assert by_header.headers["etag"] == f'"v{musk.version + 1}"'


def test_the_api_serves_its_document_and_no_pages_that_need_the_internet(
    newsroom: Newsroom,
) -> None:
    client = newsroom.client()
    for path in ("/api/docs", "/api/redoc", "/docs"):
        assert client.get(path).status_code == 404, path
    answer = client.get("/api/openapi.json")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["paths"]["/api/openapi.json"]["get"]["security"] == []
    # A bound pydantic could not express in JSON Schema would be written under its own
    # name, which validators ignore: the document would promise less than is checked.
    assert not {"ge", "le", "gt", "lt", "min_length", "max_length"} & keys_of(answer.json())


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()
