"""The public French home page, ``GET /``: the published articles newest first, paged, with
the feeds' autodiscovery links; answered from rendered bytes like the feeds (ETag, 304,
HEAD), under the article page's Content-Security-Policy. Every feed links to it as its home
page, and so does the article page's site name.

Real parts: the newsroom's newsletters, polled and translated for real on 127.0.0.1; the
app over HTTP (Starlette's test client) and the review API that withdraws an article.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import lxml.html
from newsroom import COURTS_TITLE, HOSTILE_TITLE_START, MUSK_TITLE, TOKENS, Newsroom

from aggregator import config as config_module
from aggregator.publishing.credit import french_date
from aggregator.web.app import create_app
from aggregator.web.public import ARTICLE_POLICY

CAMILLE = {"Authorization": f"Bearer {TOKENS['Camille']}"}
FEED_TYPES = {
    "/feeds/published.atom": "application/atom+xml",
    "/feeds/published.rss": "application/rss+xml",
    "/feeds/published.json": "application/feed+json",
}


def page_of(html: str) -> Any:
    return lxml.html.fromstring(html)


def listed(html: str) -> list[str]:
    """The articles' links on a home page, in order."""
    return [a.get("href") for a in page_of(html).xpath("//li[@class='article']/h2/a")]


def approve_in_order(newsroom: Newsroom, *title_starts: str) -> list[Any]:
    """Approved one minute apart, the first the oldest."""
    start = datetime.now(UTC) - timedelta(hours=1)
    approved = []
    for n, title in enumerate(title_starts):
        draft = newsroom.draft(title)
        moment = start + timedelta(minutes=n)
        approved.append(newsroom.store.approve(draft.id, actor="Camille", now=moment))
    return approved


def with_home_page_size(newsroom: Newsroom, size: int) -> Any:
    """The newsroom's app with ``[publish] home_page_size`` set, as an operator would."""
    with newsroom.config.open("a", encoding="utf-8") as config:
        config.write(f"\n[publish]\nhome_page_size = {size}\n")
    settings = config_module.load(newsroom.config)
    return create_app(settings, newsroom.store)


def test_the_home_page_lists_the_published_articles_newest_first_in_french(
    newsroom: Newsroom,
) -> None:
    musk, courts = approve_in_order(newsroom, MUSK_TITLE, COURTS_TITLE)
    pending = newsroom.store.list_drafts()
    client = newsroom.client()

    answer = client.get("/")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-security-policy"] == ARTICLE_POLICY
    assert answer.headers["referrer-policy"] == "no-referrer"
    page = page_of(answer.text)
    assert page.get("lang") == "fr"
    assert listed(answer.text) == [f"/articles/{courts.id}", f"/articles/{musk.id}"]
    unpublished = {d.id for d in pending} - {musk.id, courts.id}
    assert unpublished and not {f"/articles/{i}" for i in unpublished} & set(listed(answer.text))
    item = page.get_element_by_id(f"article-{musk.id}")
    assert item.xpath("h2/a")[0].text_content() == musk.title
    byline = item.find_class("byline")[0]
    assert byline.find_class("source")[0].text_content() == "The Torment Nexus"
    assert byline.find_class("author")[0].text_content() == musk.author
    moment = byline.find("time")
    assert moment.text_content() == french_date(musk.approved_at)  # e.g. "2 décembre 2026"
    assert datetime.fromisoformat(moment.get("datetime")) == musk.approved_at
    summary = item.find_class("summary")[0].text_content()
    assert summary and summary.split()[0] in lxml.html.fromstring(musk.body_html).text_content()

    # Autodiscovery: the three published feeds, then one per source with articles.
    alternates = [
        (link.get("type"), link.get("href"))
        for link in page.xpath("/html/head/link[@rel='alternate']")
    ]
    assert alternates[:3] == [(kind, href) for href, kind in FEED_TYPES.items()]
    slug = next(s for s, name in newsroom.store.feed_slugs().items() if name == musk.feed)
    assert alternates[3:] == [("application/atom+xml", f"/feeds/sources/{slug}.atom")]
    for kind, href in alternates:
        feed = client.get(href)
        assert feed.status_code == 200 and feed.headers["content-type"].startswith(kind)

    # Every way back home leads here: the feeds' home links and the article's site name.
    article = page_of(client.get(f"/articles/{musk.id}").text)
    assert article.xpath("//header/p[@class='site']/a")[0].get("href") == "/"
    atom = client.get("/feeds/published.atom").text
    assert f'rel="alternate" type="text/html" href="{newsroom.base_url}/"' in atom


def test_the_home_page_is_paged_with_rel_links_and_a_page_past_the_end_is_404(
    newsroom: Newsroom,
) -> None:
    drafts = [d for d in newsroom.store.list_drafts() if not d.original_title.startswith("The e")]
    assert len(drafts) >= 3
    start = datetime.now(UTC) - timedelta(hours=1)
    for n, draft in enumerate(drafts[:3]):
        newsroom.store.approve(draft.id, actor="Camille", now=start + timedelta(minutes=n))
    newest_first = [f"/articles/{d.id}" for d in reversed(drafts[:3])]
    client = newsroom.client(with_home_page_size(newsroom, 2))

    first, second = client.get("/"), client.get("/?page=2")

    assert listed(first.text) == newest_first[:2]
    assert listed(second.text) == newest_first[2:]
    head = page_of(first.text).find("head")
    assert [link.get("href") for link in head.xpath("link[@rel='next']")] == ["/?page=2"]
    assert not head.xpath("link[@rel='prev']")
    assert page_of(first.text).xpath("//nav/a[@rel='next']")[0].text_content() == (
        "Articles plus anciens →"
    )
    head = page_of(second.text).find("head")
    assert [link.get("href") for link in head.xpath("link[@rel='prev']")] == ["/"]
    assert not head.xpath("link[@rel='next']")
    assert "Page 2 sur 2" in second.text
    past = client.get("/?page=3")
    assert past.status_code == 404
    assert "page 3 does not exist: the last is 2" in past.text
    for bad in ("0", "-1", "deux", "²"):
        assert client.get(f"/?page={bad}").status_code == 422


def test_an_empty_site_says_so_and_has_one_page(newsroom: Newsroom) -> None:
    client = newsroom.client()
    answer = client.get("/")
    assert answer.status_code == 200
    assert listed(answer.text) == []
    assert "Aucun article publié pour l’instant." in answer.text
    assert not page_of(answer.text).xpath("//nav")
    assert client.get("/?page=2").status_code == 404


def test_the_home_page_is_cached_answers_head_and_304_and_follows_a_withdrawal(
    newsroom: Newsroom,
) -> None:
    musk, courts = approve_in_order(newsroom, MUSK_TITLE, COURTS_TITLE)
    client = newsroom.client()
    first = client.get("/")
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    assert "last-modified" in first.headers

    again = client.get("/", headers={"If-None-Match": etag})
    head = client.head("/")
    gzipped = client.get("/", headers={"Accept-Encoding": "gzip"})

    assert (again.status_code, again.content) == (304, b"")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["etag"] == etag
    assert gzipped.headers["content-encoding"] == "gzip" and gzipped.text == first.text

    withdrawn = client.post(
        f"/api/drafts/{musk.id}/withdraw", headers=CAMILLE, json={"version": musk.version}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    after = client.get("/", headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert listed(after.text) == [f"/articles/{courts.id}"]


def test_hostile_titles_and_authors_are_text_on_the_home_page(newsroom: Newsroom) -> None:
    hostile = newsroom.approve(HOSTILE_TITLE_START)
    answer = newsroom.client().get("/")
    page = page_of(answer.text)
    [item] = page.find_class("article")
    assert item.xpath("h2/a")[0].text_content() == hostile.title
    assert not page.xpath(
        "//body//*[self::script or self::img or self::iframe or self::svg or self::style]"
    )
    handlers = [a for e in page.iter() for a in getattr(e, "attrib", {}) if a.startswith("on")]
    assert handlers == []
