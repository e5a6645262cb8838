"""A [[feeds]] url that is a web page is followed to the feed it announces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hostile
from pollers import Poller, make, one_feed
from servers import UpstreamServer

from aggregator.models import FeedStatus
from aggregator.polling.discover import feed_links

__all__ = ["make"]  # the fixture, used by name

DATA = Path(__file__).parents[1] / "data"
PAGE = (DATA / "a-year-of-paid-newsletters.html").read_bytes()
FEED = (DATA / "torment-nexus-like.rss").read_bytes()
REAL_FEED_URL = b"https://torment-nexus.mathewingram.com/rss/"


def test_the_ghost_page_announces_its_feed() -> None:
    page_url = "https://torment-nexus.mathewingram.com/a-year-of-paid-newsletters/"
    assert feed_links(PAGE, page_url) == ["https://torment-nexus.mathewingram.com/rss/"]


def test_relative_links_resolve_against_base_and_only_feeds_count() -> None:
    page = b"""<!doctype html><html><head>
    <base href="https://example.org/blog/">
    <link rel="stylesheet" type="text/css" href="/style.css">
    <link rel="alternate" type="text/html" hreflang="fr" href="/fr/">
    <link rel="alternate" type="application/atom+xml" title="Atom" href="feed.atom">
    <link rel="Alternate" type="application/rss+xml; charset=utf-8" href="/rss.xml">
    <link rel="alternate" type="application/rss+xml" href="/rss.xml">
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
    </head><body><a rel="alternate" type="application/rss+xml" href="/comments.rss">c</a>
    </body></html>"""
    assert feed_links(page, "https://example.org/blog/post/") == [
        "https://example.org/blog/feed.atom",
        "https://example.org/rss.xml",
        "https://example.org/comments.rss",
    ]


def test_a_page_without_feed_links_gives_none() -> None:
    assert feed_links(b"<html><head><title>x</title></head></html>", "https://x/") == []


def test_poll_follows_the_page_to_its_feed_and_keeps_it(
    upstream: UpstreamServer, make: Any
) -> None:
    feed_url = upstream.add("/rss/", FEED, etag="v1")
    page = PAGE.replace(REAL_FEED_URL, b"/rss/")  # the same page, served from here
    page_url = upstream.add("/a-year-of-paid-newsletters/", page, content_type="text/html")
    poller: Poller = one_feed(make, page_url)

    assert poller.poll().entries["new"] == 3

    feed = poller.feed()
    assert (feed.url, feed.config_url) == (feed_url, page_url)
    assert (feed.status, feed.title, feed.etag) == (FeedStatus.OK, "The Torment Nexus", '"v1"')
    assert poller.poll_when_due().feeds["unchanged"] == 1  # the feed itself, with its ETag
    assert upstream.hits("/a-year-of-paid-newsletters/") == 1
    assert upstream.hits("/rss/") == 2


def test_a_page_linking_to_no_feed_is_a_clear_error(upstream: UpstreamServer, make: Any) -> None:
    page = PAGE.replace(b'rel="alternate"', b'rel="canonical"')
    poller = one_feed(make, upstream.add("/post/", page, content_type="text/html"))
    poller.poll()
    assert poller.feed().last_error == (
        "not a feed: the server sent an HTML page, and it links to no feed"
    )


def test_a_page_whose_feed_links_are_broken_says_what_they_gave(
    upstream: UpstreamServer, make: Any
) -> None:
    upstream.add("/rss/", b"", status=404)
    page = PAGE.replace(REAL_FEED_URL, b"/rss/")
    poller = one_feed(make, upstream.add("/post/", page, content_type="text/html"))
    poller.poll()
    assert poller.feed().last_error == (
        "not a feed: the server sent an HTML page whose feed links gave no feed"
        f" ({upstream.url('/rss/')}: nothing at this address (404 Not Found): check the URL)"
    )


def test_a_discovered_link_to_another_private_host_is_refused(
    upstream: UpstreamServer, make: Any
) -> None:
    """The page's host is trusted (the operator wrote it); a link inside the page is content."""
    upstream.add("/rss/", hostile.rss(2))
    elsewhere = f"http://localhost:{upstream.port}/rss/".encode()
    page = PAGE.replace(REAL_FEED_URL, elsewhere)
    poller = one_feed(
        make,
        upstream.add("/post/", page, content_type="text/html"),
        allow_private_networks=False,
    )
    poller.poll()
    assert "refused to connect to localhost" in (poller.feed().last_error or "")
    assert upstream.hits("/rss/") == 0
