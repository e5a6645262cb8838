"""Every feed the site serves passes the W3C feed validator's rules, errors and warnings
(``feedcheck``: no network here, so the validator's rules run as plain checks), after a
realistic run: three newsletters polled and translated for real, a title edited, drafts
approved several in one command, one withdrawn, the feeds paged; all through the CLI and
``aggregator serve`` over HTTP on 127.0.0.1.

Also: two drafts approved in one command, or at one instant, get distinct ``atom:updated``
values in the order they were approved (the validator warns on DuplicateUpdated).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urljoin

import feedparser
import httpx
import lxml.html
from conftest import aggregator_process, run_cli
from feedcheck import CHECKS, atom_problems, rss_problems, served_problems
from lxml import etree
from newsroom import (
    COURTS_TITLE,
    HOSTILE_TITLE_START,
    MUSK_TITLE,
    READ_TOKEN,
    SIMDJSON_TITLE,
    Newsroom,
)

ATOM = "{http://www.w3.org/2005/Atom}"


def fmt_of(url: str) -> str:
    return url.split("?")[0].rsplit(".", 1)[1]


def next_page(body: bytes, fmt: str) -> str | None:
    """The next page of a feed, if it is paged."""
    if fmt == "json":
        next_url = json.loads(body).get("next_url")
        return str(next_url) if next_url else None
    root = etree.fromstring(body)
    links = root.iter(f"{ATOM}link")
    return next((link.get("href") for link in links if link.get("rel") == "next"), None)


def updated_values(body: bytes) -> list[str]:
    root = etree.fromstring(body)
    return [entry.findtext(f"{ATOM}updated") or "" for entry in root.iter(f"{ATOM}entry")]


def with_config(newsroom: Newsroom, extra: str) -> None:
    with newsroom.config.open("a", encoding="utf-8") as config:
        config.write(f"\n{extra}\n")


def test_every_served_feed_validates_after_a_realistic_run(newsroom: Newsroom) -> None:
    with_config(newsroom, "[publish]\nmax_entries = 2\nhome_page_size = 2")
    musk, courts = newsroom.draft(MUSK_TITLE), newsroom.draft(COURTS_TITLE)
    simdjson, hostile = newsroom.draft(SIMDJSON_TITLE), newsroom.draft(HOSTILE_TITLE_START)
    others = [
        d for d in newsroom.store.list_drafts() if d.id not in {musk.id, courts.id, simdjson.id}
    ]
    config = newsroom.config
    run_cli(config, "drafts", "edit", str(musk.id), "--title", "Musk et OpenAI : le fond")
    run_cli(config, "drafts", "approve", str(musk.id), str(courts.id), str(hostile.id))
    run_cli(config, "drafts", "approve", str(simdjson.id), *[str(d.id) for d in others[:2]])
    run_cli(config, "drafts", "withdraw", str(courts.id))
    published = newsroom.store.published_count()
    assert published >= 4

    base = newsroom.base_url
    with aggregator_process(config, base), httpx.Client(trust_env=False, timeout=10) as http:
        home = http.get(f"{base}/")
        assert home.status_code == 200
        discovered = [
            urljoin(f"{base}/", link.get("href"))
            for link in lxml.html.fromstring(home.text).xpath("/html/head/link[@rel='alternate']")
        ]
        slugs = sorted(newsroom.store.feed_slugs())
        first_pages = {
            *(f"{base}/feeds/published.{fmt}" for fmt in ("atom", "rss", "json")),
            *(f"{base}/feeds/sources/{slug}.atom" for slug in slugs),
            *discovered,
        }
        checked: dict[str, list[str]] = {}
        for first in sorted(first_pages):
            url: str | None = first
            while url is not None:  # every page of a paged feed
                answer = http.get(url)
                assert answer.status_code == 200, (url, answer.text)
                fmt = fmt_of(url)
                body = answer.content
                checked[url] = CHECKS[fmt](body, url) + served_problems(
                    fmt, answer.headers["content-type"], body
                )
                url = next_page(body, fmt)
                assert url not in checked, f"{url} pages in a loop"
        # The reviewers' feed, fetched at its own address with the token in a header
        # (with ?token= the validator would see a self link without it: kept out on purpose).
        drafts_url = f"{base}/feeds/drafts.atom"
        drafts = http.get(drafts_url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert drafts.status_code == 200, drafts.text
        wrong = http.get(drafts_url, headers={"Authorization": "Bearer not-a-token-at-all"})
        assert wrong.status_code == 401
        checked[drafts_url] = atom_problems(drafts.content, drafts_url) + served_problems(
            "atom", drafts.headers["content-type"], drafts.content
        )
        published_atom = http.get(f"{base}/feeds/published.atom").content
        all_atom = b"".join(
            http.get(u).content for u in checked if fmt_of(u) == "atom" and "drafts" not in u
        )

    assert {url: problems for url, problems in checked.items() if problems} == {}
    # What was covered: every format, every source, every page, and the home's targets.
    assert len([u for u in checked if "published.atom" in u]) == -(-published // 2)
    assert set(discovered) <= set(checked) and len(discovered) >= 4
    assert MUSK_TITLE not in published_atom.decode() and "Musk et OpenAI : le fond" in (
        all_atom.decode()
    )
    assert f"/articles/{courts.id}<" not in all_atom.decode()  # withdrawn: in no feed


def test_drafts_approved_in_one_command_get_distinct_ordered_updated_values(
    newsroom: Newsroom,
) -> None:
    musk, courts = newsroom.draft(MUSK_TITLE), newsroom.draft(COURTS_TITLE)
    run_cli(newsroom.config, "drafts", "approve", str(musk.id), str(courts.id))

    client = newsroom.client()
    atom = client.get("/feeds/published.atom").content
    values = updated_values(atom)
    assert len(values) == 2 and values[0] != values[1]
    moments = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
    assert moments[0] > moments[1]  # newest first: courts was approved after musk
    ids = [e.id for e in feedparser.parse(atom).entries]
    assert ids[0].endswith(f"draft/{courts.id}") and ids[1].endswith(f"draft/{musk.id}")
    assert atom_problems(atom, f"{newsroom.base_url}/feeds/published.atom") == []
    items = client.get("/feeds/published.json").json()["items"]
    assert items[0]["date_modified"] != items[1]["date_modified"]
    rss = client.get("/feeds/published.rss").content
    assert rss_problems(rss, f"{newsroom.base_url}/feeds/published.rss") == []


def test_approvals_at_one_instant_still_get_distinct_moments_in_approval_order(
    newsroom: Newsroom,
) -> None:
    instant = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)  # a clock that does not move
    first = newsroom.store.approve(newsroom.draft(MUSK_TITLE).id, actor="Camille", now=instant)
    second = newsroom.store.approve(newsroom.draft(COURTS_TITLE).id, actor="Camille", now=instant)
    assert first.approved_at == instant
    assert second.approved_at is not None and second.approved_at > instant

    values = updated_values(newsroom.client().get("/feeds/published.atom").content)
    assert values == ["2026-03-01T09:00:00.000001Z", "2026-03-01T09:00:00Z"]


def test_the_checks_catch_what_the_validator_warns_about() -> None:
    """feedcheck's new rules fail on the feeds the validator warns about."""
    location = "http://127.0.0.1/feeds/published.atom"

    def atom(entries: str, links: str = "") -> bytes:
        return (
            '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">'
            "<id>tag:127.0.0.1,2026-01-01:/feeds</id><title>t</title>"
            "<updated>2026-03-01T09:00:00Z</updated><author><name>a</name></author>"
            f'<link rel="self" type="application/atom+xml" href="{location}"/>{links}'
            f"{entries}</feed>"
        ).encode()

    def entry(n: int, updated: str, content: str = "<p>x</p>") -> str:
        return (
            f"<entry><id>tag:127.0.0.1,2026-01-01:draft/{n}</id><title>e</title>"
            f"<updated>{updated}</updated>"
            f'<link rel="alternate" type="text/html" href="http://127.0.0.1/articles/{n}"/>'
            f'<content type="html">{escape(content)}</content></entry>'
        )

    good = atom(entry(1, "2026-03-01T09:00:00.000001Z") + entry(2, "2026-03-01T09:00:00Z"))
    assert atom_problems(good, location) == []
    same = atom(entry(1, "2026-03-01T09:00:00Z") + entry(2, "2026-03-01T09:00:00Z"))
    assert any("same value for atom:updated" in p for p in atom_problems(same, location))
    twice = '<link rel="alternate" type="text/html" href="http://127.0.0.1/"/>'
    assert any("duplicate link" in p for p in atom_problems(atom("", twice * 2), location))
    scripted = atom(entry(1, "2026-03-01T09:00:00Z", '<p onclick="x()">a</p><script>1</script>'))
    problems = atom_problems(scripted, location)
    assert any("onclick" in p for p in problems) and any("script tag" in p for p in problems)
    assert atom_problems(good, location + "?page=1") != []  # SelfDoesntMatchLocation

    rss_location = "http://127.0.0.1/feeds/published.rss"
    relative = escape('<a href="/articles/2">b</a>')
    rss = (
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>t</title><link>http://127.0.0.1/</link><description>d</description>"
        f'<language>fr</language><atom:link rel="self" type="application/rss+xml" '
        f'href="{rss_location}"/><item><title>i</title><link>http://127.0.0.1/articles/1</link>'
        '<guid isPermaLink="false">tag:127.0.0.1,2026-01-01:draft/1</guid>'
        "<pubDate>Sun, 01 Mar 2026 09:00:00 GMT</pubDate><dc:creator>a</dc:creator>"
        f"<content:encoded>{relative}</content:encoded>"
        "<description>d</description></item></channel></rss>"
    ).encode()
    problems = rss_problems(rss, rss_location)
    assert any("relative URL" in p for p in problems)
    assert any("description precedes content:encoded" in p for p in problems)

    assert served_problems("atom", "application/atom+xml; charset=utf-8", good) == []
    assert served_problems("atom", "text/plain; charset=utf-8", good) != []
    declared = b'<?xml version="1.0" encoding="iso-8859-1"?>' + good
    assert served_problems("atom", "application/atom+xml; charset=utf-8", declared) != []


def escape(html: str) -> str:
    return html.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
