"""publish: drafts -> Atom, RSS 2.0 and JSON Feed 1.1 bytes, with the credit DESIGN.md asks.

Pure: the drafts are built here, no database and no server. The three documents of a fixed
set of drafts are golden files (tests/data/golden/; rewrite them with
AGGREGATOR_UPDATE_GOLDEN=1 after a deliberate change, and read the diff).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import lxml.html
import pytest
from feedcheck import CHECKS, atom_problems, json_feed_problems, rss_problems
from lxml import etree

from aggregator.models import DraftStatus
from aggregator.publishing.credit import credit_html
from aggregator.publishing.publish import (
    FORMATS,
    Channel,
    atom_feed,
    json_feed,
    rss_feed,
)
from aggregator.store import DraftView

GOLDEN = Path(__file__).parents[1] / "data" / "golden"
ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://fr.example.org"
# Read at import: the test fixtures hide AGGREGATOR_* variables from the tests themselves.
UPDATE_GOLDEN = os.environ.get("AGGREGATOR_UPDATE_GOLDEN") == "1"
HOSTILE_BODY = (
    '<p onclick="alert(1)" style="position:fixed">Texte <a href="javascript:alert(2)">lien</a>'
    '<img src="x" onerror="alert(3)"></p><script>alert(4)</script>'
    '<iframe src="https://evil.example/"></iframe><form action="/x"><input name="p"></form>'
    "<style>p{display:none}</style>"
    '<p><a href="data:text/html,&lt;script&gt;alert(5)&lt;/script&gt;">données</a></p>'
)


def make_draft(draft_id: int, **changes: object) -> DraftView:
    draft = DraftView(
        id=draft_id,
        status=DraftStatus.APPROVED,
        title=f"Titre français {draft_id} : l'essentiel",
        body_html=f"<p>Premier paragraphe de l'article {draft_id}.</p><h2>Suite</h2>"
        f'<p>Avec <a href="https://example.com/lien">un lien</a> et <em>du style</em>.</p>',
        original_title=f"English title {draft_id}",
        original_url=f"https://newsletter.example.com/posts/{draft_id}/",
        author="Mathew Ingram",
        published_at=datetime(2025, 2, 12, 14, 3, 12, tzinfo=UTC),
        feed="The Torment Nexus",
        feed_slug="the-torment-nexus",
        feed_url="https://newsletter.example.com/rss/",
        feed_title="The Torment Nexus",
        feed_site_url="https://newsletter.example.com/",
        feed_updated_at=datetime(2025, 2, 12, 15, 0, tzinfo=UTC),
        engine="libre",
        source_language="en",
        target_language="fr",
        characters=1200,
        requests=2,
        warnings=(),
        version=2,
        reviewed_by="Camille",
        created_at=datetime(2025, 2, 12, 16, 0, tzinfo=UTC),
        updated_at=datetime(2025, 2, 13, 8, draft_id, tzinfo=UTC),
        approved_at=datetime(2025, 2, 13, 8, draft_id, tzinfo=UTC),
    )
    return dataclasses.replace(draft, **changes)  # type: ignore[arg-type]


def channel(fmt: str = "atom", **changes: object) -> Channel:
    base = Channel(BASE, f"/feeds/published.{fmt}", "Newsletters en français")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


DRAFTS = [
    make_draft(3),
    make_draft(2, author=None, published_at=None, feed_title=None),
    make_draft(1, reviewed_by=None, original_url=None, feed_site_url=None),
]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_documents_match_their_golden_files(fmt: str) -> None:
    _, render = FORMATS[fmt]
    document = render(channel(fmt, hub_url="https://hub.example.net/"), DRAFTS)
    golden = GOLDEN / f"published.{fmt}"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(document)
    assert document == golden.read_bytes()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("page", [1, 2, 3])
def test_every_page_of_every_format_passes_the_validator_rules(fmt: str, page: int) -> None:
    _, render = FORMATS[fmt]
    document_channel = channel(fmt, page=page, last_page=3)
    document = render(document_channel, DRAFTS[page - 1 : page])

    assert CHECKS[fmt](document, document_channel.self_url) == []


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_an_empty_feed_is_still_valid(fmt: str) -> None:
    _, render = FORMATS[fmt]
    assert CHECKS[fmt](render(channel(fmt), []), channel(fmt).self_url) == []


def test_the_checks_do_catch_what_the_validator_rejects() -> None:
    good = atom_feed(channel(), DRAFTS)
    assert atom_problems(good.replace(b"tag:fr.example.org,", b"urn:x:"), channel().self_url)
    assert atom_problems(good, "https://elsewhere.example/feed")  # self link != location
    rss = rss_feed(channel("rss"), DRAFTS).replace(b'isPermaLink="false"', b"")
    assert any("isPermaLink" in p for p in rss_problems(rss, channel("rss").self_url))
    broken = json.loads(json_feed(channel("json"), DRAFTS))
    del broken["items"][0]["id"]
    assert json_feed_problems(json.dumps(broken).encode(), channel("json").self_url)


def test_atom_entries_credit_the_original_as_rfc_4287_says() -> None:
    root = etree.fromstring(atom_feed(channel(), DRAFTS))
    entry = root.findall(f"{ATOM}entry")[0]

    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "fr"
    assert entry.findtext(f"{ATOM}author/{ATOM}name") == "Mathew Ingram"
    links = {link.get("rel"): link.get("href") for link in entry.findall(f"{ATOM}link")}
    assert links == {
        "alternate": f"{BASE}/articles/3",
        "via": "https://newsletter.example.com/posts/3/",
    }
    source = entry.find(f"{ATOM}source")
    assert source is not None
    assert source.findtext(f"{ATOM}id") == "https://newsletter.example.com/rss/"
    assert source.findtext(f"{ATOM}title") == "The Torment Nexus"
    assert source.findtext(f"{ATOM}updated") == "2025-02-12T15:00:00Z"
    source_links = {link.get("rel"): link.get("href") for link in source.findall(f"{ATOM}link")}
    assert source_links == {
        "self": "https://newsletter.example.com/rss/",
        "alternate": "https://newsletter.example.com/",
    }
    content = entry.findtext(f"{ATOM}content") or ""
    credit = lxml.html.fragment_fromstring(content, create_parent="div").findall(".//p")[-1]
    assert credit.text_content() == (
        "Source : English title 3 — article original de Mathew Ingram, publié le 12 février "
        "2025 dans The Torment Nexus. Traduction automatique (LibreTranslate) relue par Camille."
    )
    assert credit.find(".//a").get("href") == "https://newsletter.example.com/posts/3/"


def test_credit_falls_back_gracefully_when_the_source_says_little() -> None:
    unknown = make_draft(7, author=None, published_at=None, feed_title=None, reviewed_by=None)
    text = lxml.html.fragment_fromstring(credit_html(unknown)).text_content()
    assert text == (
        "Source : English title 7 — article original dans The Torment Nexus. "
        "Traduction automatique (LibreTranslate), relue avant publication."
    )
    pending = dataclasses.replace(unknown, approved_at=None)
    text = lxml.html.fragment_fromstring(credit_html(pending)).text_content()
    assert text.endswith("Traduction automatique (LibreTranslate), pas encore relue.")
    entry = etree.fromstring(atom_feed(channel(), [unknown])).find(f"{ATOM}entry")
    assert entry is not None
    assert entry.findtext(f"{ATOM}author/{ATOM}name") == "The Torment Nexus"


def test_a_draft_published_unreviewed_says_so_in_its_credit() -> None:
    """A feed with review = "auto": no reviewer to name, and the reader is told."""
    automatic = make_draft(8, reviewed_by=None, auto_published=True)
    text = lxml.html.fragment_fromstring(credit_html(automatic)).text_content()
    assert text.endswith("Traduction automatique (LibreTranslate), non relue.")


def test_rss_items_carry_source_creator_and_a_non_permalink_guid() -> None:
    rss = etree.fromstring(rss_feed(channel("rss"), DRAFTS))
    item = rss.find("channel/item")
    atom_id = etree.fromstring(atom_feed(channel(), DRAFTS)).findtext(f"{ATOM}entry/{ATOM}id")
    assert item is not None
    guid = item.find("guid")
    assert guid is not None
    assert guid.text == atom_id  # one id per entry, whatever the format
    assert guid.get("isPermaLink") == "false"
    assert item.findtext("{http://purl.org/dc/elements/1.1/}creator") == "Mathew Ingram"
    source = item.find("source")
    assert source is not None
    assert (source.text, source.get("url")) == (
        "The Torment Nexus",
        "https://newsletter.example.com/rss/",
    )
    assert item.findtext("pubDate") == "Thu, 13 Feb 2025 08:03:00 GMT"
    assert item.findtext("link") == f"{BASE}/articles/3"


def test_json_feed_items_credit_the_original() -> None:
    feed = json.loads(json_feed(channel("json"), DRAFTS))
    item = feed["items"][0]

    assert feed["language"] == "fr"
    assert item["authors"] == [{"name": "Mathew Ingram"}]
    assert item["external_url"] == "https://newsletter.example.com/posts/3/"
    assert item["url"] == f"{BASE}/articles/3"
    assert item["_source"]["feed_url"] == "https://newsletter.example.com/rss/"
    assert "relue par Camille" in item["content_html"]


def test_entry_ids_are_stable_and_our_own() -> None:
    before = make_draft(5)
    edited = make_draft(
        5, title="Autre titre", body_html="<p>Autre</p>", updated_at=datetime.now(UTC)
    )
    first = etree.fromstring(atom_feed(channel(), [before]))
    second = etree.fromstring(atom_feed(channel(page=2, last_page=2), [edited]))

    ids = [doc.findtext(f"{ATOM}entry/{ATOM}id") for doc in (first, second)]
    assert ids[0] == ids[1] == "tag:fr.example.org,2025-02-12:draft/5"
    assert first.findtext(f"{ATOM}id") == second.findtext(f"{ATOM}id")


def test_paging_links_follow_rfc_5005() -> None:
    def links(page: int) -> dict[str | None, str | None]:
        root = etree.fromstring(atom_feed(channel(page=page, last_page=3), []))
        return {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}

    feed = f"{BASE}/feeds/published.atom"
    assert links(1) == {
        "self": feed,
        "alternate": f"{BASE}/",
        "first": feed,
        "last": f"{feed}?page=3",
        "next": f"{feed}?page=2",
    }
    assert links(2)["previous"] == feed
    assert links(2)["next"] == f"{feed}?page=3"
    assert "next" not in links(3)
    assert links(3)["self"] == f"{feed}?page=3"
    assert "first" not in {
        link.get("rel") for link in etree.fromstring(atom_feed(channel(), [])).iter(f"{ATOM}link")
    }
    assert json.loads(json_feed(channel("json", last_page=2), []))["next_url"].endswith("?page=2")
    assert "next_url" not in json.loads(json_feed(channel("json", page=2, last_page=2), []))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_hostile_html_in_the_database_is_sanitized_at_render_time(fmt: str) -> None:
    hostile = make_draft(
        9,
        body_html=HOSTILE_BODY,
        title='Titre <script>alert("t")</script>\x0b\x1f',
        author='<img src=x onerror="alert(6)">',
        original_url="javascript:alert(7)",
    )
    _, render = FORMATS[fmt]
    document = render(channel(fmt), [hostile])

    if fmt == "json":  # feedparser reads no JSON Feed
        item = json.loads(document)["items"][0]
        html, title = item["content_html"], item["title"]
    else:
        parsed = feedparser.parse(document)
        assert not parsed.bozo, parsed.bozo_exception
        html, title = parsed.entries[0].content[0].value, parsed.entries[0].title
    fragment = lxml.html.fragment_fromstring(html, create_parent="div")
    assert {e.tag for e in fragment.iter()} <= {"div", "p", "a", "img", "small"}
    for element in fragment.iter():
        assert not [name for name in element.attrib if name.startswith("on")], element.attrib
        assert "style" not in element.attrib
        for name in ("href", "src"):
            assert not (element.get(name) or "http").lower().startswith(("javascript", "data")), (
                element.attrib
            )
    assert "Texte" in fragment.text_content()
    assert title.startswith('Titre <script>alert("t")</script>')  # text, escaped, not markup


def test_documents_are_deterministic() -> None:
    for _, render in FORMATS.values():
        assert render(channel(), DRAFTS) == render(channel(), list(DRAFTS))


def test_feedparser_reads_french_titles_and_authors() -> None:
    for fmt in ("atom", "rss"):
        _, render = FORMATS[fmt]
        parsed = feedparser.parse(render(channel(fmt), DRAFTS))
        assert not parsed.bozo, (fmt, parsed.bozo_exception)
        assert [e.title for e in parsed.entries] == [d.title for d in DRAFTS], fmt
        assert parsed.entries[0].author == "Mathew Ingram", fmt
        assert parsed.entries[0].link == f"{BASE}/articles/3", fmt


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " \t\n JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "&#106;avascript:alert(1)",
    ],
)
def test_a_link_that_is_not_http_is_left_out_and_the_feed_stays_valid(fmt: str, url: str) -> None:
    """Feeds from outside say where the original is, where its feed and site are: none of
    those may carry a script URL to a subscriber. Left out, not turned into '#'."""
    hostile = make_draft(
        7,
        original_url=url,
        feed_url=url,
        feed_site_url=url,
        title="Titre \u202egpj.exe\u202c\x00",
        author="Mallory \u2066x\u2069",
    )
    _, render = FORMATS[fmt]
    document = render(channel(fmt), [hostile])
    text = document.decode("utf-8")
    assert not re.search(r"(?:j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t|vbscript|data)\s*:", text, re.I)
    assert not any(c in text for c in "\u202e\u202c\u2066\u2069\x00")
    assert "\\u202e" not in text.lower() and "\\u0000" not in text
    assert CHECKS[fmt](document, channel(fmt).self_url) == []
    if fmt == "json":
        item = json.loads(document)["items"][0]
        assert "external_url" not in item
        assert set(item["_source"]) == {"title", "original_title"}
        assert item["title"] == "Titre gpj.exe"
    else:
        parsed = feedparser.parse(document)
        assert not parsed.bozo
        links = [link["href"] for link in parsed.entries[0].get("links", [])]
        assert links == [f"{BASE}/articles/7"]
        assert parsed.entries[0].title == "Titre gpj.exe"
    if fmt == "rss":
        assert b"<source" not in document  # RSS 2.0 wants a url on <source>: none, no source
