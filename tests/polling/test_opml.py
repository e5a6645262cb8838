"""Subscriptions in and out as OPML, through the command line a user types."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import WriteConfig, run_cli
from servers import UpstreamServer

from aggregator.config import FeedSettings
from aggregator.errors import OpmlError
from aggregator.polling.opml import read_opml, write_opml

DATA = Path(__file__).parents[1] / "data"
PAGE = (DATA / "a-year-of-paid-newsletters.html").read_bytes()
FEED = (DATA / "torment-nexus-like.rss").read_bytes()
REAL_FEED_URL = b"https://torment-nexus.mathewingram.com/rss/"

# In the shape feed readers export (NetNewsWire, Feedly, Miniflux): folders as outlines
# without xmlUrl, attributes in varied case, entities, a non-feed link, a duplicate.
EXPORTED = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>Subscriptions from a feed reader</title></head>
  <body>
    <outline text="The Torment Nexus" title="The Torment Nexus" type="rss"
             xmlUrl="https://torment-nexus.mathewingram.com/rss/"
             htmlUrl="https://torment-nexus.mathewingram.com/"/>
    <outline text="Tech" title="Tech">
      <outline text="Daring Fireball" type="rss" xmlUrl="https://daringfireball.net/feeds/main"/>
      <outline text="Newsletters">
        <outline text="Lemire &amp; co &quot;blog&quot;" xmlurl="https://lemire.me/blog/feed/"/>
      </outline>
      <outline text="Duplicate" xmlUrl="https://daringfireball.net/feeds/main"/>
    </outline>
    <outline text="A web page, not a feed" type="link" url="https://example.org/"/>
    <outline text="Not http" xmlUrl="file:///etc/passwd"/>
  </body>
</opml>
"""


def test_import_prints_feeds_tables_that_load_as_config(tmp_path: Path) -> None:
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(EXPORTED, encoding="utf-8")
    result = run_cli(tmp_path / "unused.toml", "feeds", "import", str(opml))

    tables = tomllib.loads(result.stdout)["feeds"]

    assert tables == [
        {
            "url": "https://torment-nexus.mathewingram.com/rss/",
            "name": "The Torment Nexus",
        },
        {"url": "https://daringfireball.net/feeds/main", "name": "Daring Fireball"},
        {"url": "https://lemire.me/blog/feed/", "name": 'Lemire & co "blog"'},
    ]
    assert "# Tech / Newsletters\n[[feeds]]" in result.stdout


def test_import_of_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.opml"
    bad.write_text("<opml><body><outline", encoding="utf-8")
    result = run_cli(tmp_path / "unused.toml", "feeds", "import", str(bad), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {bad}: not a readable OPML file (")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<opml><body><outline text='x'/></body></opml>", "no feed found"),
        ("<rss><channel/></rss>", "not an OPML file (its root element is <rss>)"),
        ("<opml><head/></opml>", "the OPML file has no <body>"),
        (
            '<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]><opml><body>'
            '<outline text="&x;" xmlUrl="https://x/feed"/></body></opml>',
            "not a readable OPML file",
        ),
    ],
)
def test_bad_opml_is_named(text: str, message: str) -> None:
    with pytest.raises(OpmlError, match=re.escape(message)):
        read_opml(text.encode(), "subs.opml")


def test_export_prints_opml_that_imports_back(write_config: WriteConfig, tmp_path: Path) -> None:
    feeds = [
        {"url": "https://torment-nexus.mathewingram.com/rss/", "name": "The Torment Nexus"},
        {"url": "https://lemire.me/blog/feed/", "name": 'Lemire & co "blog" <3'},
    ]
    config = write_config(feeds)

    exported = run_cli(config, "feeds", "export").stdout

    root = ElementTree.fromstring(exported)
    assert root.tag == "opml" and root.get("version") == "2.0"
    outlines = [o.attrib for o in root.iter("outline")]
    assert [(o["xmlUrl"], o["text"], o["type"]) for o in outlines] == [
        (f["url"], f["name"], "rss") for f in feeds
    ]
    again = read_opml(exported.encode(), "exported.opml")
    assert [(f.url, f.name) for f in again] == [(f["url"], f["name"]) for f in feeds]


def test_export_adds_what_polling_learnt() -> None:
    feeds = [FeedSettings(url="https://x.example/rss")]
    text = write_opml(
        feeds,
        now=datetime(2025, 2, 12, tzinfo=UTC),
        titles={"https://x.example/rss": "X weekly"},
        sites={"https://x.example/rss": "https://x.example/"},
    )
    (outline,) = ElementTree.fromstring(text).iter("outline")
    assert outline.get("text") == "X weekly" and outline.get("htmlUrl") == "https://x.example/"
    assert "<dateCreated>Wed, 12 Feb 2025 00:00:00 GMT</dateCreated>" in text


def test_import_skips_and_names_feeds_already_configured(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    config = write_config(
        [
            # The same feeds as two of the file's, written as people do: another case for the
            # host, a trailing slash less, http for https.
            {"url": "https://Torment-Nexus.mathewingram.com/rss", "name": "Torment"},
            {"url": "http://daringfireball.net/feeds/main/", "name": "DF"},
        ]
    )
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(EXPORTED, encoding="utf-8")

    result = run_cli(config, "feeds", "import", str(opml))

    assert tomllib.loads(result.stdout)["feeds"] == [
        {"url": "https://lemire.me/blog/feed/", "name": 'Lemire & co "blog"'}
    ]
    assert result.stderr.splitlines() == [
        "laissé de côté, déjà configuré : https://torment-nexus.mathewingram.com/rss/",
        "laissé de côté, déjà configuré : https://daringfireball.net/feeds/main",
    ]
    with config.open("a", encoding="utf-8") as appended:
        appended.write("\n" + result.stdout)
    run_cli(config, "check-config")


def test_import_skips_a_feed_that_polling_discovered_for_a_configured_page(
    write_config: WriteConfig, upstream: UpstreamServer, tmp_path: Path
) -> None:
    feed_url = upstream.add("/rss/", FEED)
    page_url = upstream.add(
        "/blog/", PAGE.replace(REAL_FEED_URL, b"/rss/"), content_type="text/html"
    )
    config = write_config([{"url": page_url, "name": "Ghost"}])
    run_cli(config, "poll", "--fetch-only")
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(
        f'<opml version="2.0"><body><outline text="g" xmlUrl="{feed_url}"/></body></opml>',
        encoding="utf-8",
    )

    result = run_cli(config, "feeds", "import", str(opml))

    assert result.stdout == ""
    assert f"laissé de côté, déjà configuré : {feed_url}" in result.stderr


def test_export_names_the_discovered_feed_not_the_page(
    write_config: WriteConfig, upstream: UpstreamServer
) -> None:
    feed_url = upstream.add("/rss/", FEED)
    page_url = upstream.add(
        "/blog/", PAGE.replace(REAL_FEED_URL, b"/rss/"), content_type="text/html"
    )
    config = write_config([{"url": page_url, "name": "Ghost"}])
    run_cli(config, "poll", "--fetch-only")

    (outline,) = ElementTree.fromstring(run_cli(config, "feeds", "export").stdout).iter("outline")

    assert outline.get("xmlUrl") == feed_url
    assert outline.get("htmlUrl") == "https://torment-nexus.mathewingram.com/"
