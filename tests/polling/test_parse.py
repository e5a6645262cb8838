"""Feed bytes -> entries: golden files for every real fixture, then the rules one by one.

Golden files (lemon24/reader style): ``tests/data/parse/NAME`` is a real feed, copied byte
for byte; ``NAME.json`` is what ``parse_feed`` gives for it, reviewed by hand. After a
deliberate change, regenerate with ``REGENERATE_GOLDEN_FILES=1 pytest tests/test_parse.py``
and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import hostile
import pytest

from aggregator.errors import NotAFeedError, ParseError
from aggregator.polling.parse import ParsedFeed, is_html_page, parse_feed

DATA = Path(__file__).parents[1] / "data"
GOLDEN = DATA / "parse"
FEEDS = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".rss", ".atom", ".xml"))
# The URL each fixture is fetched from; relative links resolve against it.
FETCHED_FROM = {
    "NetNewsWire_qemu.atom": "https://www.qemu.org/feed.xml",
    "feed-rs_atom_relative.xml": "https://example.com/blog/feed.xml",
    "feedparser_http_relative_xml_base.xml": "http://example.com/",
}


def fetched_from(path: Path) -> str:
    return FETCHED_FROM.get(path.name, f"http://127.0.0.1:8097/{path.name}")


def parse(name: str, content_type: str | None = None) -> ParsedFeed:
    path = GOLDEN / name
    return parse_feed(path.read_bytes(), fetched_from(path), content_type)


def as_json(feed: ParsedFeed) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return list(value)  # as JSON holds it
        return value.isoformat() if isinstance(value, datetime) else value

    return {
        key: (
            [{k: plain(v) for k, v in dataclasses.asdict(e).items()} for e in feed.entries]
            if key == "entries"
            else plain(value)
        )
        for key, value in dataclasses.asdict(feed).items()
        if key != "item_fingerprints"  # hashes of raw bytes: tested below, not reviewed
    }


@pytest.mark.parametrize("path", FEEDS, ids=[p.name for p in FEEDS])
def test_golden(path: Path) -> None:
    got = as_json(parse_feed(path.read_bytes(), fetched_from(path)))
    expected_path = path.with_name(path.name + ".json")
    if os.environ.get("REGENERATE_GOLDEN_FILES"):
        text = json.dumps(got, ensure_ascii=False, indent=1, sort_keys=True)
        expected_path.write_text(text + "\n", encoding="utf-8")
    assert got == json.loads(expected_path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ relative URLs


def test_everything_relative_resolves_against_the_fetch_url() -> None:
    feed = parse("NetNewsWire_qemu.atom")
    assert feed.site_url == "https://www.qemu.org/"
    first = feed.entries[0]
    assert first.url == "https://www.qemu.org/2025/08/26/qemu-10-1-0/"
    assert first.key == "https://www.qemu.org/2025/08/26/qemu-10-1-0"
    assert all(e.url and e.url.startswith("https://www.qemu.org/") for e in feed.entries)
    assert 'href="https://www.qemu.org/download/#source"' in (first.content_html or "")


def test_root_relative_links_in_content_resolve_against_xml_base() -> None:
    feed = parse("NetNewsWire_DaringFireball.atom")
    content = "".join(e.content_html or "" for e in feed.entries)
    # In the feed: <a href="/misc/2017/06/dickbar-vox.png">, under xml:base .../linked/
    assert 'href="https://daringfireball.net/misc/2017/06/dickbar-vox.png"' in content
    assert not re.search(r'(?:src|href)="/', content)


def test_xml_base_on_atom_content() -> None:
    (entry,) = parse("feed-rs_atom_xml_base.xml").entries
    assert entry.content_html == (
        '<p><img src="https://numi.st/post/2022/travel-uke/IMG_1232.jpeg" /></p>'
    )


def test_relative_link_in_rss_content_resolves_against_the_document() -> None:
    (entry,) = parse("feedparser_http_item_content_encoded_base_docuri.xml").entries
    assert entry.content_html == '<a href="http://127.0.0.1:8097/relative/uri">click here</a>'


def test_xml_base_of_a_sibling_does_not_leak() -> None:
    (entry,) = parse("feedparser_entry_content_xml_base_inherit_3.xml").entries
    assert entry.content_html == (
        '<div>Example <a href="http://example.com/test/test.html">test</a></div>'
    )


def test_titles_are_plain_text() -> None:
    assert parse("feedparser_relative_uri_inherit.xml").title == "Example test"
    (entry,) = parse("feedparser_http_relative_xml_base.xml").entries
    assert entry.title == "Example test"


def test_relative_entry_links_with_an_absolute_self_link() -> None:
    feed = parse("feed-rs_atom_relative.xml")
    assert feed.site_url == "https://example.com/blog/"
    assert feed.entries[0].url == "https://example.com/blog/2003/12/13/atom03"


# ------------------------------------------------------------------ encodings


@pytest.mark.parametrize(
    ("name", "title", "text"),
    [
        ("feed-rs_rss_2.0_encoding_1.xml", "RSS Feed do Site Inovação Tecnológica", "Revolução"),
        ("feed-rs_rss_1.0_iso8859.xml", "Golem.de", "Glasfaserförderung"),
        ("NetNewsWire_kc0011.rss", "投资资讯网交易在线--流通纪念币最新20篇论坛主题-全文", "纪念"),
    ],
)
def test_declared_encodings(name: str, title: str, text: str) -> None:
    feed = parse(name)
    assert feed.title == title
    assert text in feed.entries[0].title + (feed.entries[0].summary_html or "")
    assert feed.warning is None


def test_undeclared_windows_1255_is_recognised() -> None:
    (entry,) = parse("feedparser_windows1255.xml").entries
    assert (entry.content_html or entry.summary_html or "").startswith("האם תדפיס נייר של אתר")


def test_http_charset_wins_over_a_missing_declaration() -> None:
    body = '<rss version="2.0"><channel><title>Caf\xe9</title></channel></rss>'.encode("latin-1")
    feed = parse_feed(body, "http://x/", "application/rss+xml; charset=ISO-8859-1")
    assert feed.title == "Café"


def test_a_wrong_http_charset_is_recovered() -> None:
    feed = parse("feed-rs_rss_2.0_encoding_1.xml", "text/xml; charset=utf-8")
    assert feed.title == "RSS Feed do Site Inovação Tecnológica"


# ------------------------------------------------------------------ broken feeds


def test_truncated_feed_keeps_only_its_complete_entries() -> None:
    full = (DATA / "torment-nexus-like.rss").read_bytes()
    feed = parse_feed(hostile.truncated(full, keep_items=2), "http://x/rss/")
    assert [e.key for e in feed.entries] == ["67ab3c41f2d9a80001c4e7b2", "67a1f0c2b8e4d30001a9c115"]
    assert feed.warning is not None
    assert feed.warning.startswith("it is cut short or malformed (")
    assert feed.warning.endswith("); kept the 2 complete entries")
    whole = parse_feed(full, "http://x/rss/")
    assert feed.entries == whole.entries[:2]


def test_feed_cut_after_a_server_error_keeps_its_title() -> None:
    feed = parse("feed-rs_rss_2.0_invalid_1.xml")
    assert (feed.title, feed.entries) == ("Reuters: Most Read Articles", ())
    assert feed.warning == "it is malformed (no element found at line 19); kept what could be read"


def test_feed_cut_inside_cdata() -> None:
    feed = parse("feedparser_rss_incomplete_cdata.xml")
    assert feed.title == "can feedparser read this xml" and feed.entries == ()
    assert "cut short or malformed" in (feed.warning or "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not a feed: the server sent an empty body"),
        (b"  \r\n ", "not a feed: the server sent an empty body"),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', "not a feed: the server sent"),
        (b"<?xml version='1.0'?><rss version='2.0'><chan", "not a feed: the XML is broken"),
    ],
)
def test_nothing_to_keep_is_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=f"^{message}"):
        parse_feed(body, "http://x/")


@pytest.mark.parametrize(
    "page",
    [
        (DATA / "a-year-of-paid-newsletters.html").read_bytes(),
        b"\xef\xbb\xbf<!-- cached -->\n<!DOCTYPE html>\n<html><body></body></html>",
        b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head/></html>',
        b"<HTML><BODY>It works!</BODY></HTML>",
    ],
    ids=["ghost-page", "bom-comment-doctype", "xhtml", "upper-case"],
)
def test_html_page_is_not_a_feed(page: bytes) -> None:
    assert is_html_page(page)
    with pytest.raises(NotAFeedError, match=r"^not a feed: the server sent an HTML page$"):
        parse_feed(page, "http://x/")


def test_a_feed_mentioning_html_is_still_a_feed() -> None:
    assert not is_html_page((DATA / "torment-nexus-like.rss").read_bytes())


# ------------------------------------------------------------------ entity attacks


def test_xxe_reads_no_file() -> None:
    feed = parse_feed(hostile.xxe("/etc/passwd"), "http://x/")
    text = json.dumps(as_json(feed))
    assert "root:" not in text
    assert feed.warning is not None and "declared XML entities" in feed.warning
    assert feed.title == "XXE"


@pytest.mark.parametrize("body", [hostile.quadratic_blowup(), hostile.billion_laughs()])
def test_entity_blow_ups_are_not_expanded(body: bytes) -> None:
    feed = parse_feed(body, "http://x/")
    assert len(json.dumps(as_json(feed))) < 4 * len(body)
    assert "removed unread" in (feed.warning or "")


def test_an_entity_declaration_that_cannot_be_removed_is_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x"><rss><channel>&a;'
    with pytest.raises(ParseError, match="declares XML entities"):
        parse_feed(body, "http://x/")


def test_a_plain_doctype_is_left_alone() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        b' "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel>'
        b"<title>Old</title><item><title>one</title><link>http://x/1</link></item></channel></rss>"
    )
    feed = parse_feed(body, "http://x/")
    assert feed.warning is None and feed.entries[0].url == "http://x/1"


# ------------------------------------------------------------------ keys and hashes


def test_entry_keys_prefer_guid_then_link_then_a_hash() -> None:
    body = (
        b'<rss version="2.0"><channel><title>k</title>'
        b'<item><guid isPermaLink="false">g-1</guid><link>http://x/1</link><title>a</title></item>'
        b"<item><link>http://x/2</link><title>b</title></item>"
        b"<item><title>c</title><description>only text</description></item>"
        b"</channel></rss>"
    )
    keys = [e.key for e in parse_feed(body, "http://x/").entries]
    assert keys[:2] == ["g-1", "http://x/2"]
    assert keys[2].startswith("sha256:") and len(keys[2]) == 7 + 64


def test_entry_categories_are_kept_once_each_in_order() -> None:
    """RSS ``<category>`` and Atom ``term``: what the feeds' ``category:`` rules match."""
    rss = (
        b'<rss version="2.0"><channel><title>c</title><item><guid>g</guid><title>a</title>'
        b"<category>AI</category><category><![CDATA[Politics]]></category>"
        b"<category>AI</category></item><item><guid>h</guid><title>b</title></item>"
        b"</channel></rss>"
    )
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>c</title><entry><id>e</id>'
        b'<title>a</title><category term="media"/><category term="" label="Labelled"/>'
        b"</entry></feed>"
    )
    tagged, untagged = parse_feed(rss, "http://x/").entries
    assert tagged.categories == ("AI", "Politics")
    assert untagged.categories == ()
    assert parse_feed(atom, "http://x/").entries[0].categories == ("media", "Labelled")


def test_dates_do_not_change_the_content_hash() -> None:
    def feed(date: str) -> bytes:
        return (
            f'<rss version="2.0"><channel><title>t</title><item><guid>g</guid><title>a</title>'
            f"<pubDate>{date}</pubDate><description>same</description></item></channel></rss>"
        ).encode()

    first = parse_feed(feed("Wed, 12 Feb 2025 14:00:00 GMT"), "http://x/").entries[0]
    later = parse_feed(feed("Thu, 13 Feb 2025 09:00:00 GMT"), "http://x/").entries[0]
    assert first.published_at != later.published_at
    assert first.content_hash == later.content_hash


def test_ttl_is_read_in_minutes() -> None:
    feed = parse_feed((DATA / "torment-nexus-like.rss").read_bytes(), "http://x/")
    assert feed.ttl_seconds == 3600


# ------------------------------------------------------------------ known items


@pytest.mark.parametrize("path", FEEDS, ids=[p.name for p in FEEDS])
def test_leaving_out_known_items_gives_the_same_entries(path: Path) -> None:
    """Each item parsed alone, in its document's context, is the entry the whole document
    gives: xml:base, relative links, encodings and feed-level authors included."""
    body, url = path.read_bytes(), fetched_from(path)
    whole = parse_feed(body, url)
    if not whole.item_fingerprints:
        assert whole.warning or not whole.entries  # only broken or empty documents opt out
        return
    assert len(whole.item_fingerprints) == len(whole.entries)
    for index, entry in enumerate(whole.entries):
        known = set(whole.item_fingerprints) - {whole.item_fingerprints[index]}
        alone = parse_feed(body, url, known_items=known)
        assert alone.entries == (entry,)
        assert (alone.title, alone.site_url, alone.ttl_seconds) == (
            whole.title, whole.site_url, whole.ttl_seconds,
        )  # fmt: skip
        assert alone.item_fingerprints == whole.item_fingerprints


def test_a_document_of_known_items_parses_none_of_them() -> None:
    body = (DATA / "torment-nexus-like.rss").read_bytes()
    whole = parse_feed(body, "http://x/rss/")
    again = parse_feed(body.replace(b"<ttl>60</ttl>", b"<ttl>90</ttl>"), "http://x/rss/",
                       known_items=set(whole.item_fingerprints))  # fmt: skip
    assert again.entries == () and again.ttl_seconds == 5400


def test_known_items_are_ignored_in_a_broken_document() -> None:
    full = (DATA / "torment-nexus-like.rss").read_bytes()
    known = set(parse_feed(full, "http://x/rss/").item_fingerprints)
    cut = parse_feed(hostile.truncated(full), "http://x/rss/", known_items=known)
    assert len(cut.entries) == 2 and cut.item_fingerprints == ()


def test_an_item_named_in_cdata_does_not_fool_the_split() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b'<item><guid isPermaLink="false">a</guid><description><![CDATA[Write </item> to end'
        b' an item]]></description></item><item><guid isPermaLink="false">b</guid><title>b'
        b"</title></item></channel></rss>"
    )
    whole = parse_feed(body, "http://x/")
    assert [e.key for e in whole.entries] == ["a", "b"]
    assert whole.item_fingerprints == ()  # the split went wrong: no shortcut
