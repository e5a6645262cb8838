"""The draft is right: what goes into a French draft, through the real pipeline.

Each test polls local newsletter sites with ``aggregator poll`` (LibreTranslate on 127.0.0.1
behind deep-translator) and reads the result as a user does: ``drafts show --json``, or the
review desk over HTTP.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from conftest import DATA_DIR, WriteConfig, run_cli, run_cli_json
from newsroom import MUSK_TITLE, TOKENS, Newsroom
from servers import LibreTranslateServer, UpstreamServer, dictionary_translate

SUBSTACK_INTRO = (
    "Hello and welcome back to The Weekly Byte, the letter about the software we all "
    "depend on and the people who keep it running."
)
SUBSTACK_SIGN_OFF = (
    "Subscribers keep this letter independent and free for everyone. If you value it, "
    "please consider becoming one of them this week."
)
SUBSTACK_TITLES = (
    "The quiet cost of free software",
    "Why your phone battery still fades",
    "The slow death of the desktop application",
)


def drafts(config: Path) -> dict[str, dict[str, Any]]:
    """Every draft, as ``drafts show --json`` gives it, by original title."""
    listed = run_cli_json(config, "drafts", "list", "--status", "all", "--json")
    assert isinstance(listed, list)
    shown = [run_cli_json(config, "drafts", "show", str(d["id"]), "--json") for d in listed]
    return {d["original_title"]: d for d in shown if isinstance(d, dict)}


def plain(words: str) -> str:
    """Words as compared here: French typography (apostrophes, thin spaces) set aside."""
    words = words.replace("\u2019", "'").replace("\u202f", " ").replace("\u00a0", " ")
    return re.sub(r"\s+([:;!?»])", r"\1", " ".join(words.split()))


def text(html: str) -> str:
    return plain(lxml.html.fragment_fromstring(html, create_parent="div").text_content())


def fr(english: str) -> str:
    """What the test translator makes of ``english``, as ``text`` shows it."""
    return plain(dictionary_translate(english))


def poll_substack(
    upstream: UpstreamServer, write_config: WriteConfig, key: str = ""
) -> dict[str, dict[str, Any]]:
    feed = (DATA_DIR / "substack-like.rss").read_text(encoding="utf-8")
    url = upstream.add("/feed", feed.replace("{base}", upstream.base_url))
    config = with_translation_key(write_config([{"url": url, "name": "The Weekly Byte"}]), key)
    run_cli(config, "poll")
    found = drafts(config)
    assert set(SUBSTACK_TITLES) <= set(found), found.keys()
    return found


def with_translation_key(config: Path, line: str) -> Path:
    """The config with one more key in its [translation] table."""
    if line:
        written = config.read_text(encoding="utf-8")
        config.write_text(written.replace("[translation]\n", f"[translation]\n{line}\n", 1))
    return config


def sent_lines(libretranslate: LibreTranslateServer) -> list[str]:
    return [line.strip() for q in libretranslate.texts for line in q.split("\n")]


# ---------------------------------------------------------------- link blogs


THIRD_PARTY_PATH = "/2017/6/26/apple-arkit-ios-11-augmented-reality/"
THIRD_PARTY_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Apple's AR is closer to reality than Google's</title>
<meta name="author" content="Someone At The Verge"></head><body>
<header><a href="/">The Verge</a></header><main><article>
<h1>Apple's AR is closer to reality than Google's</h1>
<p>Augmented reality developers have spent the month building demos with the new framework,
and the results spread quickly across social networks.</p>
<p>Measuring tapes that float in the air, virtual pets that hide behind real sofas and games
that turn a kitchen table into a battlefield were all built within days of the release.</p>
<p>Competing platforms have promised similar features for years, but their hardware
requirements kept them from reaching ordinary phones in large numbers.</p>
</article></main><footer>All rights reserved</footer></body></html>"""


def test_a_link_blog_post_is_the_bloggers_comment_and_the_article_stays_a_link(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    # Daring Fireball's real feed, one linked post kept; the article it links to (The
    # Verge's) is served here, on another host name than the feed's site.
    real = (DATA_DIR / "parse" / "NetNewsWire_DaringFireball.atom").read_text(encoding="utf-8")
    head = real[: real.index("<entry>")]
    entry = next(e for e in re.findall(r"<entry>.*?</entry>", real, re.S) if "theverge" in e)
    original_link = re.search(r'rel="alternate" type="text/html" href="([^"]+)"', entry)
    assert original_link
    third_party = f"http://localhost:{upstream.port}{THIRD_PARTY_PATH}"
    feed = head + entry.replace(original_link.group(1), third_party) + "</feed>"
    url = upstream.add("/feeds/main", feed, content_type="application/atom+xml")
    upstream.add(THIRD_PARTY_PATH, THIRD_PARTY_PAGE, content_type="text/html; charset=utf-8")
    config = write_config([{"url": url, "name": "Daring Fireball"}])

    run_cli(config, "poll")

    (draft,) = drafts(config).values()
    assert upstream.hits(THIRD_PARTY_PATH) == 0  # someone else's article is not taken
    body = draft["body_html"]
    assert fr("Two great examples via the very fun") in text(body)
    assert "Augmented reality developers" not in body
    assert fr("Augmented reality developers") not in body
    links = lxml.html.fragment_fromstring(body, create_parent="div").iter("a")
    assert third_party in [a.get("href") for a in links]  # the article stays a link
    # The credit links to the post itself, on the blogger's site, not to the article.
    permalink = re.search(r'rel="related" type="text/html" href="([^"]+)"', entry)
    assert permalink
    assert draft["original_url"] == permalink.group(1)
    credit = lxml.html.fragment_fromstring(draft["credit_html"], create_parent="div")
    assert [a.get("href") for a in credit.iter("a")] == [permalink.group(1)]


def test_a_post_that_is_not_a_link_still_reads_its_page(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    """The title repeated at the top of a short post's page is dropped from the body."""
    title = "A short note on caching"
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
</head><body><header><a href="/">Notes</a></header><main><article><h1>{title}</h1>
<p>Caching is hard, and the hardest part is knowing when to forget what you cached before.
This is a short post with a few sentences about it, enough for the page to be an article.</p>
<p>Another paragraph follows, with more words about invalidation and the cost of stale
answers in a busy system that many people use at the same time.</p>
</article></main><footer>Copyright</footer></body></html>"""
    upstream.add("/notes/caching/", page, content_type="text/html; charset=utf-8")
    feed = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Notes</title>
<link>{upstream.base_url}/</link><item><title>{title}</title>
<link>{upstream.base_url}/notes/caching/</link><guid>caching</guid>
<description>Caching is hard.</description></item></channel></rss>"""
    url = upstream.add("/notes.rss", feed)
    config = write_config([{"url": url, "name": "Notes"}])

    run_cli(config, "poll")

    draft = drafts(config)[title]
    assert upstream.hits("/notes/caching/") == 1
    root = lxml.html.fragment_fromstring(draft["body_html"], create_parent="div")
    headings = [" ".join(h.text_content().split()) for h in root.iter("h1", "h2")]
    assert headings == []  # the draft has its title; the body does not repeat it
    assert text(draft["body_html"]).startswith(fr("Caching is hard"))


# ---------------------------------------------------------------- recurring blocks


def test_a_newsletters_recurring_intro_and_sign_off_are_dropped_and_listed(
    upstream: UpstreamServer, write_config: WriteConfig, libretranslate: LibreTranslateServer
) -> None:
    found = poll_substack(upstream, write_config)

    for title, draft in found.items():
        body = text(draft["body_html"])
        assert fr(SUBSTACK_INTRO)[:40] not in body, title
        assert fr(SUBSTACK_SIGN_OFF)[:40] not in body, title
        assert fr(SUBSTACK_INTRO[-40:]) not in body, title
        warned = " ".join(draft["warnings"])
        assert "Hello and welcome back to The Weekly Byte" in warned, draft["warnings"]
        assert "Subscribers keep this letter independent" in warned, draft["warnings"]
    sent = sent_lines(libretranslate)
    assert SUBSTACK_INTRO not in sent
    assert SUBSTACK_SIGN_OFF not in sent
    # What is not boilerplate is all there.
    assert fr("Phone makers announce better batteries") in text(
        found["Why your phone battery still fades"]["body_html"]
    )


def test_kept_recurring_blocks_are_translated_once_for_posts_drafted_together(
    upstream: UpstreamServer, write_config: WriteConfig, libretranslate: LibreTranslateServer
) -> None:
    # A little latency, as a remote service has: the three posts are in flight together.
    libretranslate.latency = 0.2
    found = poll_substack(upstream, write_config, 'recurring_blocks = "keep"')

    for title, draft in found.items():
        body = text(draft["body_html"])
        assert fr(SUBSTACK_INTRO) in body, title
        assert fr(SUBSTACK_SIGN_OFF) in body, title
        assert not any("recurring" in w for w in draft["warnings"]), draft["warnings"]
    sent = sent_lines(libretranslate)
    assert sent.count(SUBSTACK_INTRO) == 1
    assert sent.count(SUBSTACK_SIGN_OFF) == 1


def test_ghost_boilerplate_is_dropped_the_same_way(
    upstream: UpstreamServer, write_config: WriteConfig, libretranslate: LibreTranslateServer
) -> None:
    feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    url = upstream.add(
        "/rss/", feed.replace("https://torment-nexus.mathewingram.com", upstream.base_url)
    )
    config = write_config([{"url": url, "name": "The Torment Nexus"}])

    run_cli(config, "poll")

    for title, draft in drafts(config).items():
        assert "Welcome to The Torment Nexus" not in text(draft["body_html"]), title
        assert fr("Thanks for reading")[:12] not in text(draft["body_html"])
    assert not any("Welcome to The Torment Nexus" in line for line in sent_lines(libretranslate))


# ---------------------------------------------------------------- links, images and cards


def test_footnote_links_stay_inside_the_article(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    draft = poll_substack(upstream, write_config)["The quiet cost of free software"]

    root = lxml.html.fragment_fromstring(draft["body_html"], create_parent="div")
    hrefs = [a.get("href") for a in root.iter("a")]
    assert hrefs == ["#footnote-1", "#footnote-anchor-1"], hrefs  # not the site's home page
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert {"footnote-1", "footnote-anchor-1"} <= ids  # the targets are there
    assert fr("A survey of large companies found") in text(draft["body_html"])


def test_image_alt_and_title_and_bookmark_cards_are_translated(
    upstream: UpstreamServer, write_config: WriteConfig
) -> None:
    feed = (DATA_DIR / "torment-nexus-like.rss").read_text(encoding="utf-8")
    url = upstream.add(
        "/rss/", feed.replace("https://torment-nexus.mathewingram.com", upstream.base_url)
    )
    run_cli(write_config([{"url": url, "name": "The Torment Nexus"}]), "poll")
    substack = poll_substack(upstream, write_config)["The quiet cost of free software"]
    musk = drafts(write_config())[MUSK_TITLE]  # the same database

    image = next(
        lxml.html.fragment_fromstring(substack["body_html"], create_parent="div").iter("img")
    )
    assert plain(image.get("alt")) == fr("A server rack in a data centre")
    assert image.get("alt") != "A server rack in a data centre"
    assert plain(image.get("title")) == fr("The machines behind the software")
    root = lxml.html.fragment_fromstring(musk["body_html"], create_parent="div")
    first = next(root.iter("img"))
    assert plain(first.get("alt")) == fr(MUSK_TITLE)
    # The bookmark card: a linked title and a description, each a block of its own.
    paragraphs = [plain(p.text_content()) for p in root.iter("p")]
    title = fr("OpenAI and the nonprofit problem")
    description = fr("Why a charity cannot simply sell itself to its own for-profit subsidiary.")
    assert title in paragraphs and description in paragraphs, paragraphs
    assert not any("problèmePourquoi" in p or "problemWhy" in p for p in paragraphs)
    card_link = next(a for a in root.iter("a") if plain(a.text_content()) == title)
    assert card_link.get("href").endswith("/openai-and-the-nonprofit-problem/")


def test_the_desk_lists_alt_text_as_a_block_and_saves_an_edit_into_the_image(
    newsroom: Newsroom,
) -> None:
    musk = newsroom.draft(MUSK_TITLE)
    client = newsroom.client()
    headers = {"Authorization": f"Bearer {TOKENS['Camille']}"}

    detail = client.get(f"/api/drafts/{musk.id}", headers=headers).json()
    blocks = detail["blocks"]
    alt = next(b for b in blocks if b["tag"] == "x-img-alt")
    assert alt["original_html"] == MUSK_TITLE
    assert plain(alt["french_html"]) == fr(MUSK_TITLE)
    assert alt["index"] == len(blocks) - 1  # after every block: their numbers stay
    texts = [b["original_html"] for b in blocks]
    assert "OpenAI and the nonprofit problem" in " ".join(texts)
    assert "Why a charity cannot simply sell itself" in " ".join(texts)

    edited = client.patch(
        f"/api/drafts/{musk.id}",
        headers={**headers, "If-Match": f'"v{detail["version"]}"'},
        json={"blocks": [{"index": alt["index"], "html": "Elon Musk & OpenAI, l'offre"}]},
    )

    assert edited.status_code == 200, edited.text
    body = edited.json()["body_html"]
    image = next(lxml.html.fragment_fromstring(body, create_parent="div").iter("img"))
    assert plain(image.get("alt")) == "Elon Musk & OpenAI, l'offre"
    assert "l'offre" not in text(body)  # in the attribute, not in the text


@pytest.mark.parametrize("mode", ["sometimes"])
def test_recurring_blocks_takes_drop_or_keep(write_config: WriteConfig, mode: str) -> None:
    config = with_translation_key(write_config(), f'recurring_blocks = "{mode}"')
    result = run_cli(config, "check-config", check=False)
    assert result.returncode != 0
    assert "translation.recurring_blocks" in result.stdout + result.stderr
    run_cli(with_translation_key(write_config(), 'recurring_blocks = "keep"'), "check-config")
