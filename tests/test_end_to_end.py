"""Walking skeleton: English newsletters in, credited French drafts out, approved ones published.

Driven only through the public interface of DESIGN.md (the CLI and HTTP), against real HTTP
servers on 127.0.0.1: the newsletter sites (``UpstreamServer``) and a LibreTranslate API
(``LibreTranslateServer``) that deep-translator talks to.
"""

from __future__ import annotations

import html
import re
import tomllib
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import httpx
import py3langid
import pytest
from conftest import DATA_DIR, WriteConfig, aggregator_process, run_cli, run_cli_json
from servers import LibreTranslateServer, UpstreamServer, dictionary_translate

from aggregator.translation.typography import french_text

GHOST_ORIGIN = "https://torment-nexus.mathewingram.com"
GHOST_FEED_TITLE = "The Torment Nexus"
EXCERPTS_FEED_TITLE = "Excerpts Weekly"
GHOST_FEED_PATH = "/rss/"
EXCERPTS_FEED_PATH = "/excerpt-only.rss"
MEMBERS_ONLY_PATH = "/a-year-of-paid-newsletters/"
MEMBERS_ONLY_PREVIEW = "A year ago I turned on paid subscriptions."
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True)
class Article:
    """An English article that must become exactly one French draft."""

    path: str
    title: str
    author: str
    feed_title: str


MUSK = Article(
    "/does-elon-musk-want-to-buy-openai/",
    "Does Elon Musk want to buy OpenAI? Yes and no",
    "Mathew Ingram",
    GHOST_FEED_TITLE,
)
COURTS = Article(
    "/the-courts-and-the-executive-order/",
    "The courts and the executive order",
    "Mathew Ingram",
    GHOST_FEED_TITLE,
)
SIMDJSON = Article(
    "/articles/json-parsing-simdjson-vs-json-for-modern-c/",
    "JSON parsing: simdjson vs. JSON for Modern C++",
    "Daniel Lemire",
    EXCERPTS_FEED_TITLE,
)
WORDPRESS = Article(
    "/articles/want-to-see-a-more-diverse-wordpress-contributor-community/",
    "Want to See a More Diverse WordPress Contributor Community? So Do We.",
    "Andrea Middleton",
    EXCERPTS_FEED_TITLE,
)
ARTICLES = (MUSK, COURTS, SIMDJSON, WORDPRESS)


# --------------------------------------------------------------------------------------------
# Helpers


class HtmlOutline(HTMLParser):
    """Tag counts, the text of every element of a few kinds, and the visible text."""

    TEXT_OF = frozenset({"h2", "li", "blockquote"})

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.texts: dict[str, list[str]] = {tag: [] for tag in self.TEXT_OF}
        self._open: list[tuple[str, list[str]]] = []
        self._visible: list[str] = []
        self.feed(markup)
        self.close()

    @property
    def text(self) -> str:
        return normalize_space(" ".join(self._visible))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag in self.TEXT_OF:
            self._open.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, parts = self._open.pop()
            self.texts[tag].append(normalize_space("".join(parts)))

    def handle_data(self, data: str) -> None:
        self._visible.append(data)
        for _, parts in self._open:
            parts.append(data)


def normalize_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def ghost_feed_bodies() -> list[str]:
    """The content:encoded HTML of each item of the crafted Ghost feed, in order."""
    feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    return re.findall(r"<content:encoded><!\[CDATA\[(.*?)\]\]></content:encoded>", feed, re.S)


def ghost_post_page(title: str, author: str, published: str, body_html: str) -> str:
    """A free Ghost post's public page, in the shape of a-year-of-paid-newsletters.html.

    The crafted fixture has no page for its free posts, but a real Ghost site serves one for
    every item; whether the aggregator reads it or the feed's content:encoded, it finds the
    same article.
    """
    escaped_title = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{escaped_title}</title>
<meta property="og:type" content="article"><meta property="og:title" content="{escaped_title}">
<meta name="twitter:label1" content="Written by"><meta name="twitter:data1" content="{author}">
<meta property="article:published_time" content="{published}">
<meta name="generator" content="Ghost 5.109">
</head>
<body class="post-template">
<header class="gh-head"><a class="gh-head-logo" href="/">The Torment Nexus</a></header>
<main class="gh-main"><article class="gh-article post">
<header class="gh-article-header"><h1 class="gh-article-title">{escaped_title}</h1>
<p class="gh-article-meta">{author}</p></header>
<section class="gh-content gh-canvas">
{body_html}
</section></article></main>
<footer class="gh-foot"><p>The Torment Nexus © 2025 · Powered by Ghost</p></footer>
</body></html>
"""


def feed_label(value: Any) -> str:
    """A draft's ``feed``: its name, whether given as a string or as an object."""
    return str(value["name"]) if isinstance(value, dict) else str(value)


def is_french(text: str) -> bool:
    return bool(py3langid.classify(text)[0] == "fr")


@dataclass(frozen=True)
class Newsletters:
    """The sites, the translator and the aggregator's config of one test, after a first poll."""

    config: Path
    upstream: UpstreamServer
    libretranslate: LibreTranslateServer

    def url(self, article: Article) -> str:
        return self.upstream.url(article.path)

    @property
    def aggregator_base_url(self) -> str:
        settings = tomllib.loads(self.config.read_text(encoding="utf-8"))
        return str(settings["server"]["base_url"])

    def drafts(self, status: str | None = None) -> list[dict[str, Any]]:
        args = ["drafts", "list", "--json"]
        if status is not None:
            args += ["--status", status]
        listed = run_cli_json(self.config, *args)
        assert isinstance(listed, list), listed
        return listed

    def show(self, draft_id: object) -> dict[str, Any]:
        shown = run_cli_json(self.config, "drafts", "show", str(draft_id), "--json")
        assert isinstance(shown, dict), shown
        return shown

    def draft_ids_by_article(self) -> dict[Article, object]:
        by_url = {draft["original_url"]: draft["id"] for draft in self.drafts(status="all")}
        return {article: by_url[self.url(article)] for article in ARTICLES}


def serve_newsletter_sites(upstream: UpstreamServer) -> None:
    """The Ghost newsletter (3 posts, the last members-only) and a feed of excerpts."""
    base = upstream.base_url
    ghost_feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    upstream.add(
        GHOST_FEED_PATH,
        ghost_feed.replace(GHOST_ORIGIN, base),
        etag="ghost-feed-v1",
        last_modified="Wed, 12 Feb 2025 15:20:41 GMT",
    )
    musk_body, courts_body, _members_only_preview = ghost_feed_bodies()
    for article, published, body in (
        (MUSK, "2025-02-12T14:03:12.000Z", musk_body),
        (COURTS, "2025-02-05T13:45:00.000Z", courts_body),
    ):
        page = ghost_post_page(article.title, article.author, published, body)
        upstream.add(
            article.path, page.replace(GHOST_ORIGIN, base), content_type="text/html; charset=utf-8"
        )
    members_only_page = (DATA_DIR / "a-year-of-paid-newsletters.html").read_text(encoding="utf-8")
    upstream.add(
        MEMBERS_ONLY_PATH,
        members_only_page.replace(GHOST_ORIGIN, base),
        content_type="text/html; charset=utf-8",
    )

    excerpts_feed = (DATA_DIR / "excerpt-only.rss").read_text(encoding="utf-8")
    upstream.add(EXCERPTS_FEED_PATH, excerpts_feed.replace("{base}", base))
    for article, page_file in (
        (SIMDJSON, "trafilatura_lemire.me.json.html"),
        (WORDPRESS, "trafilatura_blog.wordpress.com.diverse.html"),
    ):
        upstream.add(
            article.path,
            (DATA_DIR / page_file).read_bytes(),
            content_type="text/html; charset=utf-8",
        )


@pytest.fixture
def newsletters(
    upstream: UpstreamServer, libretranslate: LibreTranslateServer, write_config: WriteConfig
) -> Newsletters:
    serve_newsletter_sites(upstream)
    config = write_config(
        [
            {"url": upstream.url(GHOST_FEED_PATH), "name": GHOST_FEED_TITLE},
            {"url": upstream.url(EXCERPTS_FEED_PATH), "name": EXCERPTS_FEED_TITLE},
        ]
    )
    run_cli(config, "db", "upgrade")
    run_cli(config, "poll")
    # Every article is drafted by the first poll; if one failed, say why here.
    failing = run_cli_json(config, "entries", "list", "--state", "failing", "--json")
    assert failing == [], failing
    return Newsletters(config, upstream, libretranslate)


# --------------------------------------------------------------------------------------------
# Polling: drafts


def test_poll_makes_one_french_draft_per_full_english_article(newsletters: Newsletters) -> None:
    drafts = newsletters.drafts()

    assert sorted(draft["original_url"] for draft in drafts) == sorted(
        newsletters.url(article) for article in ARTICLES
    )
    assert {draft["status"] for draft in drafts} == {"pending"}
    for article in ARTICLES:
        draft_id = next(d["id"] for d in drafts if d["original_url"] == newsletters.url(article))
        draft = newsletters.show(draft_id)
        body = HtmlOutline(draft["body_html"])
        where = f"draft {draft_id} ({article.title})"

        assert draft["original_title"] == article.title, where
        assert draft["original_url"] == newsletters.url(article), where
        assert draft["title"] != article.title, where
        assert is_french(f"{draft['title']}\n{body.text}"), f"{where} is not French: {body.text}"
        assert draft["author"] == article.author, where
        assert feed_label(draft["feed"]) == article.feed_title, where
        assert draft["engine"] == "libre", where
        assert draft["status"] == "pending", where


def french(english: str) -> str:
    """What the fake engine answers, as the draft sets it: in French typography (spaces
    collapsed, as HtmlOutline reads them)."""
    return " ".join(french_text(dictionary_translate(english)).split())


def test_ghost_draft_keeps_the_article_structure(newsletters: Newsletters) -> None:
    musk_id = newsletters.draft_ids_by_article()[MUSK]
    body = HtmlOutline(newsletters.show(musk_id)["body_html"])
    original = HtmlOutline(ghost_feed_bodies()[0])

    assert body.tags["h2"] == 2
    assert body.tags["blockquote"] == 1
    assert body.tags["li"] == 3
    assert body.tags["img"] >= 1
    # The fake engine translates word by word, out of context: whatever the batching, each
    # heading and list item must come back as the dictionary says, in French typography.
    assert body.texts["h2"] == [french(text) for text in original.texts["h2"]]
    assert body.texts["li"] == [french(text) for text in original.texts["li"]]
    assert is_french(body.texts["blockquote"][0])
    assert "While a group of young engineers" not in body.text


def test_drafts_from_article_pages_keep_their_content(newsletters: Newsletters) -> None:
    ids = newsletters.draft_ids_by_article()
    simdjson = newsletters.show(ids[SIMDJSON])["body_html"]
    wordpress_html = newsletters.show(ids[WORDPRESS])["body_html"]
    wordpress = HtmlOutline(wordpress_html).text

    # The benchmark table (or the code) survives as such, numbers and file names untouched.
    assert re.search(r"<(table|pre|code)\b", simdjson), simdjson
    simdjson_text = HtmlOutline(simdjson).text
    for kept in ("0.091 GB/s", "gsoc-2018", "simdjson", "GNU GCC 8.3"):
        assert kept in simdjson_text
    assert "Proudly powered" not in simdjson_text  # the site footer is not the article

    assert "Pourquoi WordCamps\u202f?" in wordpress_html  # "Why WordCamps?", a heading
    assert "Jill" in wordpress
    # Words outside the dictionary stay English, so page chrome would still show through.
    assert "Missing out" not in wordpress
    assert "Opens" not in wordpress


def test_members_only_post_is_neither_translated_nor_drafted(newsletters: Newsletters) -> None:
    members_only_url = newsletters.upstream.url(MEMBERS_ONLY_PATH)

    assert members_only_url not in [d["original_url"] for d in newsletters.drafts(status="all")]
    sent = "\n".join(newsletters.libretranslate.texts)
    assert "paid subscriptions" not in sent, "the members-only preview was sent to translation"
    assert "paid newsletters" not in sent, "the members-only title was sent to translation"

    feeds = run_cli_json(newsletters.config, "feeds", "list", "--json")
    assert isinstance(feeds, list)
    by_name = {feed["name"]: feed for feed in feeds}
    assert set(by_name) == {GHOST_FEED_TITLE, EXCERPTS_FEED_TITLE}
    for feed in feeds:
        expected_keys = {"url", "name", "status", "last_checked_at", "next_check_at"}
        expected_keys |= {"error_count", "last_error", "entries"}
        assert expected_keys <= set(feed), feed
        assert feed["error_count"] == 0, feed
        assert feed["last_checked_at"], feed
    assert by_name[GHOST_FEED_TITLE]["url"] == newsletters.upstream.url(GHOST_FEED_PATH)
    assert by_name[GHOST_FEED_TITLE]["entries"] == 3  # the members-only post is stored
    assert by_name[EXCERPTS_FEED_TITLE]["entries"] == 2


def test_second_poll_adds_no_draft_and_translates_nothing(newsletters: Newsletters) -> None:
    drafts_before = newsletters.drafts(status="all")
    translations_before = newsletters.libretranslate.requests
    page_hits_before = {a: newsletters.upstream.hits(a.path) for a in ARTICLES}
    ghost_feed_requests_before = newsletters.upstream.hits(GHOST_FEED_PATH)
    assert translations_before > 0

    run_cli(newsletters.config, "poll")

    assert newsletters.drafts(status="all") == drafts_before
    assert newsletters.libretranslate.requests == translations_before
    assert newsletters.upstream.hits(GHOST_FEED_PATH) == ghost_feed_requests_before + 1
    last_feed_request = [
        request for request in newsletters.upstream.requests if request.path == GHOST_FEED_PATH
    ][-1]
    # DESIGN: conditional GET with the stored validators, then no article is fetched again.
    assert last_feed_request.headers.get("if-none-match") == '"ghost-feed-v1"'
    assert {a: newsletters.upstream.hits(a.path) for a in ARTICLES} == page_hits_before


def test_drafts_list_json_shape(newsletters: Newsletters) -> None:
    drafts = newsletters.drafts(status="all")

    assert len(drafts) == len(ARTICLES)
    for draft in drafts:
        assert {"id", "status", "title", "original_url", "feed", "created_at"} <= set(draft)
        assert datetime.fromisoformat(draft["created_at"]), draft


# --------------------------------------------------------------------------------------------
# Review and publication


def test_approved_drafts_are_published_with_credit_and_rejected_never(
    newsletters: Newsletters,
) -> None:
    ids = newsletters.draft_ids_by_article()
    approved = (MUSK, SIMDJSON)
    run_cli(newsletters.config, "drafts", "approve", *(str(ids[a]) for a in approved))
    run_cli(newsletters.config, "drafts", "reject", str(ids[COURTS]))
    run_cli(newsletters.config, "poll")  # a rejected entry must not come back as a new draft

    statuses = {d["original_url"]: d["status"] for d in newsletters.drafts(status="all")}
    assert statuses == {
        newsletters.url(MUSK): "approved",
        newsletters.url(SIMDJSON): "approved",
        newsletters.url(COURTS): "rejected",
        newsletters.url(WORDPRESS): "pending",
    }
    french_titles = {a: newsletters.show(ids[a])["title"] for a in ARTICLES}

    base_url = newsletters.aggregator_base_url
    with (
        aggregator_process(newsletters.config, base_url, "serve"),
        httpx.Client(base_url=base_url, timeout=10, trust_env=False) as client,
    ):
        response = client.get("/feeds/published.atom")
    assert response.status_code == 200, response.text
    assert "xml" in response.headers["content-type"]

    assert ElementTree.fromstring(response.content).get(XML_LANG) == "fr"
    published = feedparser.parse(response.content)
    assert not published.bozo, published.bozo_exception
    assert published.feed.get("language") == "fr"
    via_links = {
        entry_url(entry, "via"): entry for entry in published.entries if entry_url(entry, "via")
    }
    assert len(published.entries) == len(approved)
    assert set(via_links) == {newsletters.url(a) for a in approved}

    base = newsletters.upstream.base_url
    original_feeds = {
        GHOST_FEED_TITLE: {f"{base}/", newsletters.upstream.url(GHOST_FEED_PATH)},
        EXCERPTS_FEED_TITLE: {f"{base}/", newsletters.upstream.url(EXCERPTS_FEED_PATH)},
    }
    for article in approved:
        entry = via_links[newsletters.url(article)]
        assert entry.title == french_titles[article]
        assert entry.title != article.title
        assert entry.get("author") == article.author
        source = entry.get("source", {})
        assert source.get("title") == article.feed_title, source
        source_links = {link.get("href") for link in source.get("links", [])}
        assert source_links & original_feeds[article.feed_title], source
        content = entry.content[0].value
        assert "Source" in content
        assert newsletters.url(article) in content
        assert article.author in content

    unpublished_titles = (french_titles[COURTS], french_titles[WORDPRESS])
    for title in unpublished_titles:
        assert html.escape(title, quote=False) not in response.text
    assert newsletters.url(COURTS) not in response.text


def entry_url(entry: Any, rel: str) -> str | None:
    return next((link["href"] for link in entry.get("links", []) if link.get("rel") == rel), None)
