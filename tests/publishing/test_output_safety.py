"""What leaves the system is safe whatever came in: only http(s) URLs in every published
format (Atom, RSS, JSON Feed, article pages, the reviewers' drafts.atom), no bidi override
or control character in any title or body, desk pages that make the reviewer's browser
contact no upstream host (images go through the desk's own SSRF-guarded image route), and
404/422 rather than 500 for ids too large for the database and JSON nested too deep.

Everything runs for real on 127.0.0.1: a hostile Atom newsletter on the local upstream
server, ``aggregator poll`` (CLI), then ``aggregator serve`` read over HTTP.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import httpx
import lxml.html
import pytest
from conftest import aggregator_process, free_port, run_cli, run_cli_json
from lxml import etree
from newsroom import PASSWORD, TOKENS, log_in
from servers import LOOPBACK, LibreTranslateServer, UpstreamServer

from aggregator.untrusted import plain_text, safe_http_url

FEED_PATH = "/schemes.atom"
TOKEN = {"Authorization": f"Bearer {TOKENS['Camille']}"}
READ_TOKEN = "reader-0123456789abcdef"  # a feed reader's URL carries a read-only token
# What an entry's link says in the feed's XML, and what a browser would make of it.
HOSTILE_LINKS = {
    "plain": "javascript:alert(1)",
    "data": "data:text/html,&lt;script&gt;alert(2)&lt;/script&gt;",
    "vbscript": "vbscript:msgbox(3)",
    "spaces": " &#9;&#10;&#13; JaVaScRiPt:alert(4)",
    "entity": "&#106;avascript:alert(5)",
    "tab-inside": "java&#9;script:alert(7)",
    "upper-data": "DATA:text/html;base64,PHNjcmlwdD5hbGVydCg4KTwvc2NyaXB0Pg==",
}
UNSAFE_SCHEME = re.compile(r"(?:j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t|vbscript|data)\s*:", re.I)
BIDI_AND_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\u202a-\u202e\u2066-\u2069]")
SPOOFED_TITLE = "Invoice \u202egpj.exe\u202c and the \u2066isolated\u2069 budget"
# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
)
SENTENCES = (
    "The engineers of a small company said that the government would pay for the new software.",
    "It is the first time that the company has asked for public money for its work.",
    "The people who read the statement were not sure what it means for the users.",
    "The board said that the money would help the engineers build a faster parser.",
    "The new version of the library would be free for every user and every developer.",
    "Some readers asked why the government should pay for software that a company sells.",
    "Others said that the public should own the code that public money pays for.",
    "The engineers said that they agree with both groups and will publish the code.",
)


def article_body(number: int, extra: str = "") -> str:
    """A full article in the feed (so no page is fetched), different for every entry."""
    paragraphs = [
        f"<p>Letter number {number}: {' '.join(SENTENCES[i:] + SENTENCES[:i])}</p>"
        for i in range(3)
    ]
    return "".join(paragraphs) + extra + f"<p>Thanks for reading letter {number}.</p>"


def hostile_feed(base: str) -> str:
    images = (
        '<p><img src="http://169.254.169.254/latest/meta-data/iam/" alt="metadata">'
        f'<img src="{base}/pixel.gif?reader=42" alt=""><img src="{base}/photo.png" alt="photo">'
        "</p>"
    )
    bidi = "<p>The \u202eyenom\u202c and the \u2067hidden\u2069 part of the story.</p>"
    entries = [
        (name, link, f"Letter about {name} links", article_body(i))
        for i, (name, link) in enumerate(HOSTILE_LINKS.items())
    ]
    entries.append(("safe", f"{base}/letters/safe/", "Letter with a good link", article_body(90)))
    entries.append(
        ("images", f"{base}/letters/images/", "Letter with pictures", article_body(91, images))
    )
    entries.append(("bidi", f"{base}/letters/bidi/", SPOOFED_TITLE, article_body(92, bidi)))
    xml_entries = "".join(
        f"""
  <entry>
    <id>tag:schemes.test,2025:{name}</id>
    <title>{title}</title>
    <updated>2025-02-10T09:00:00Z</updated>
    <author><name>Mallory \u202eeciffo\u202c</name></author>
    <link rel="alternate" href="{link}"/>
    <content type="html">{_escape(body)}</content>
  </entry>"""
        for name, link, title, body in entries
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Schemes Weekly</title>
  <id>tag:schemes.test,2025:feed</id>
  <updated>2025-02-10T09:00:00Z</updated>
  <link rel="alternate" type="text/html" href=" &#9;JaVaScRiPt:alert('site')"/>
  {xml_entries}
</feed>
"""


def _escape(html: str) -> str:
    return html.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Site:
    config: Path
    base_url: str
    upstream: UpstreamServer

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, trust_env=False)

    def drafts(self) -> list[dict[str, Any]]:
        """Every draft, as the running server's API lists them."""
        with self.client() as client:
            answer = client.get("/api/drafts?status=all&limit=200", headers=TOKEN)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["drafts"]
        return found


def site_config(
    folder: Path, database: Path, feed_url: str, libre_url: str, *, allow_private: bool
) -> tuple[Path, str]:
    """config.toml (and the review password and API tokens beside it) for one site."""
    folder.mkdir(parents=True, exist_ok=True)
    base_url = f"http://{LOOPBACK}:{free_port()}"
    lines = [
        "[database]", f'url = "sqlite:///{database}"',
        "[server]", f'host = "{LOOPBACK}"', f"port = {base_url.rsplit(':', 1)[1]}",
        f'base_url = "{base_url}"',
        # The operator's feed URL stays trusted either way; URLs from its content do not.
        "[fetch]", f"allow_private_networks = {'true' if allow_private else 'false'}",
        "[translation]", 'engine = "libre"',
        "[translation.libre]", f'url = "{libre_url}"', 'api_key = "test"',
        "[review]", 'password_file = "review-password"', 'api_tokens_file = "api-tokens"',
        "[[feeds]]", f'url = "{feed_url}"', 'name = "Schemes Weekly"',
    ]  # fmt: skip
    config = folder / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    (folder / "api-tokens").write_text(
        "".join(f"{name}:{token}\n" for name, token in TOKENS.items())
        + f"Reader:{READ_TOKEN}:read\n",
        encoding="utf-8",
    )
    return config, base_url


@dataclass
class Drafted:
    """The hostile newsletter, polled and translated once for the module (a slow step)."""

    database: Path
    upstream: UpstreamServer
    libre_url: str


@pytest.fixture(scope="module")
def drafted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drafted]:
    folder = tmp_path_factory.mktemp("schemes")
    with UpstreamServer() as upstream, LibreTranslateServer() as libretranslate:
        base = upstream.base_url
        upstream.add(FEED_PATH, hostile_feed(base), content_type="application/atom+xml")
        upstream.add("/photo.png", PNG, content_type="image/png")
        upstream.add("/pixel.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", content_type="image/gif")
        database = folder / "aggregator.db"
        config, _ = site_config(
            folder, database, upstream.url(FEED_PATH), libretranslate.url("/"), allow_private=False
        )
        run_cli(config, "db", "upgrade")
        run_cli(config, "poll")
        listed = run_cli_json(config, "drafts", "list", "--status", "all", "--json")
        assert isinstance(listed, list)
        assert len(listed) == len(HOSTILE_LINKS) + 3, "every letter became a draft"
        yield Drafted(database, upstream, libretranslate.url("/"))


def serve_copy(drafted: Drafted, folder: Path, *, allow_private: bool) -> Iterator[Site]:
    """A copy of the drafted database, served by `aggregator serve` on a free port."""
    database = folder / "aggregator.db"
    shutil.copyfile(drafted.database, database)
    config, base_url = site_config(
        folder, database, drafted.upstream.url(FEED_PATH), drafted.libre_url,
        allow_private=allow_private,
    )  # fmt: skip
    site = Site(config, base_url, drafted.upstream)
    with aggregator_process(site.config, site.base_url, "serve"):
        yield site


@pytest.fixture
def guarded(drafted: Drafted, tmp_path: Path) -> Iterator[Site]:
    """Served as in production: private networks are not allowed for URLs from content."""
    yield from serve_copy(drafted, tmp_path, allow_private=False)


@pytest.fixture
def open_network(drafted: Drafted, tmp_path: Path) -> Iterator[Site]:
    """The same, with private networks allowed, so that images on 127.0.0.1 are fetched."""
    yield from serve_copy(drafted, tmp_path, allow_private=True)


def approve_all(site: Site, client: httpx.Client) -> None:
    for draft in site.drafts():
        answer = client.post(
            f"/api/drafts/{draft['id']}/approve", json={"version": draft["version"]}, headers=TOKEN
        )
        assert answer.status_code == 200, answer.text


# ---------------------------------------------------------------- the helper itself


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " \t\n JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\x00javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "&#106;avascript:alert(1)",
        "//evil.example/x",
        "/relative/path",
        "http://",
        "http://[::1",
        "https://exa\u202emple.com/",
        "",
        None,
    ],
)
def test_safe_http_url_leaves_out_everything_but_web_urls(url: str | None) -> None:
    assert safe_http_url(url) is None


def test_safe_http_url_keeps_web_urls_as_a_browser_reads_them() -> None:
    assert safe_http_url("https://example.com/a?b=1#c") == "https://example.com/a?b=1#c"
    assert safe_http_url("  HTTP://Example.com/x\n") == "HTTP://Example.com/x"
    assert plain_text("a\x00b\u202ec\u2066d\te\nf\u200fg") == "abcd\te\nf\u200fg"


# ---------------------------------------------------------------- every format


def assert_no_unsafe_url(where: str, text: str) -> None:
    found = UNSAFE_SCHEME.search(text)
    assert found is None, f"{where} holds {text[max(0, found.start() - 80) : found.end() + 40]!r}"


def feed_urls(parsed: Any) -> list[str]:
    """Every URL feedparser found in a feed, entries' and sources' included."""
    urls = [link.get("href", "") for link in parsed.feed.get("links", [])]
    for entry in parsed.entries:
        urls += [link.get("href", "") for link in entry.get("links", [])]
        urls += [entry.get("link", ""), entry.get("id", "")]
        source = entry.get("source", {})
        urls += [link.get("href", "") for link in source.get("links", [])]
        urls += [source.get("id", ""), source.get("href", ""), source.get("link", "")]
    return [u for u in urls if u]


def test_every_published_format_holds_only_web_urls(guarded: Site) -> None:
    with guarded.client() as client:
        drafts_atom = client.get(f"/feeds/drafts.atom?token={READ_TOKEN}")
        assert drafts_atom.status_code == 200
        approve_all(guarded, client)
        bodies = {"drafts.atom": drafts_atom.text}
        for fmt in ("atom", "rss", "json"):
            answer = client.get(f"/feeds/published.{fmt}")
            assert answer.status_code == 200
            bodies[fmt] = answer.text
        pages = {
            f"/articles/{d['id']}": client.get(f"/articles/{d['id']}") for d in guarded.drafts()
        }
    listed = guarded.drafts()
    assert all(d["original_url"] is None or d["original_url"].startswith("http") for d in listed)
    for where, text in bodies.items():
        assert_no_unsafe_url(where, text)
    for where, answer in pages.items():
        assert answer.status_code == 200
        assert_no_unsafe_url(where, answer.text)
    for name in ("drafts.atom", "atom", "rss"):
        parsed = feedparser.parse(bodies[name].encode())
        assert not parsed.bozo, (name, parsed.bozo_exception)
        assert len(parsed.entries) == len(HOSTILE_LINKS) + 3
        urls = feed_urls(parsed)
        assert all(u.startswith(("http://", "https://", "tag:")) for u in urls), (name, urls)
        if name != "rss":  # RSS names the original in its content's credit line only
            # The safe letter keeps its link to the original: the rule leaves out, never blanks.
            assert f"{guarded.upstream.base_url}/letters/safe/" in urls, name
    atom = etree.fromstring(bodies["atom"].encode())
    vias = atom.findall(".//{http://www.w3.org/2005/Atom}link[@rel='via']")
    assert len(vias) == 3  # safe, images, bidi: the seven hostile links are left out
    json_feed = json.loads(bodies["json"])
    for item in json_feed["items"]:
        for value in _strings(item):
            assert_no_unsafe_url("published.json", value)
        assert "home_page_url" not in item["_source"], "the site link was javascript:"
    external = [item.get("external_url") for item in json_feed["items"]]
    assert sorted(u for u in external if u) == sorted(
        f"{guarded.upstream.base_url}/letters/{name}/" for name in ("safe", "images", "bidi")
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# ---------------------------------------------------------------- bidi and controls


def test_no_bidi_override_or_nul_reaches_a_title_or_body(guarded: Site) -> None:
    spoofed = next(d for d in guarded.drafts() if "Invoice" in d["title"])
    # Stripped when the feed was read: the titles, authors and texts that the CLI prints.
    listed = run_cli(guarded.config, "drafts", "list", "--status", "all", "--json").stdout
    shown = run_cli(guarded.config, "drafts", "show", str(spoofed["id"]), "--json").stdout
    for printed in (listed, shown):
        assert BIDI_AND_CONTROLS.search(printed) is None
        assert "\\u202e" not in printed.lower() and "\\u0000" not in printed
    with guarded.client() as client:
        current = client.get(f"/api/drafts/{spoofed['id']}", headers=TOKEN).json()
        assert current["title"].startswith("Invoice gpj.exe")  # the API shows it plain too
        edited = client.patch(
            f"/api/drafts/{spoofed['id']}",
            json={"version": current["version"], "title": "Facture\x00 \u202egpj.exe\u202c"},
            headers=TOKEN,
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["title"] == "Facture gpj.exe"
        approve_all(guarded, client)
        texts = {
            f"published.{fmt}": client.get(f"/feeds/published.{fmt}").text
            for fmt in ("atom", "rss", "json")
        }
        for draft in guarded.drafts():
            texts[f"/articles/{draft['id']}"] = client.get(f"/articles/{draft['id']}").text
        session = log_in(client)
        assert session
        texts["desk"] = client.get(f"/review/drafts/{spoofed['id']}").text
    for where, text in texts.items():
        found = BIDI_AND_CONTROLS.search(text)
        assert found is None, f"{where} holds {found.group()!r} at {found.start()}"
        # JSON could carry them escaped.
        assert "\\u202e" not in text.lower() and "\\u0000" not in text, where
    page = lxml.html.fromstring(texts[f"/articles/{spoofed['id']}"])
    assert page.findtext(".//h1") == "Facture gpj.exe"
    assert "yenom" in texts["published.atom"], "the text stays; only the controls go"
    stored = run_cli_json(guarded.config, "drafts", "show", str(spoofed["id"]), "--json")
    assert isinstance(stored, dict)
    assert stored["title"] == "Facture gpj.exe"


# ---------------------------------------------------------------- the desk's images


IMAGE_ATTRIBUTES = ("src", "srcset", "poster", "background", "data", "lowsrc", "dynsrc")


def desk_page(site: Site, client: httpx.Client) -> httpx.Response:
    pictures = [d for d in site.drafts() if "pictures" in d["original_title"]]
    answer = client.get(f"/review/drafts/{pictures[0]['id']}")
    assert answer.status_code == 200, answer.text
    return answer


def test_the_desk_page_makes_the_browser_load_no_upstream_image(guarded: Site) -> None:
    with guarded.client() as client:
        log_in(client)
        answer = desk_page(guarded, client)
    policy = answer.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["img-src"] == "'self'"
    assert "default-src" in directives and directives["default-src"] == "'none'"
    page = lxml.html.fromstring(answer.text)
    images = list(page.iter("img"))
    assert len(images) >= 4, "the original's and the French block's images are shown"
    for element in page.iter():
        for name in IMAGE_ATTRIBUTES:
            value = element.get(name)
            if value is not None and element.tag != "script":
                assert value.startswith("/") and not value.startswith("//"), (element.tag, value)
    for image in images:
        assert image.get("src", "").startswith("/review/images?src=http"), image.get("src")
    # The raw markup, not just what lxml makes of it.
    assert not re.search(r"""\bsrc\s*=\s*["']?(?:https?:)?//""", answer.text)


def test_the_image_route_keeps_the_ssrf_guard(guarded: Site) -> None:
    base = guarded.upstream.base_url
    photo_hits = guarded.upstream.hits("/photo.png")
    with guarded.client() as client:
        anonymous = client.get("/review/images", params={"src": f"{base}/photo.png"})
        assert anonymous.status_code == 401
        log_in(client)
        internal = client.get(
            "/review/images", params={"src": "http://169.254.169.254/latest/meta-data/"}
        )
        local = client.get("/review/images", params={"src": f"{base}/photo.png"})
        scheme = client.get("/review/images", params={"src": "javascript:alert(1)"})
    assert internal.status_code == 403, internal.text
    assert "169.254.169.254" in internal.text
    assert local.status_code == 403, local.text
    assert guarded.upstream.hits("/photo.png") == photo_hits, "the guard stops before any request"
    assert scheme.status_code == 422
    for answer in (anonymous, internal, local, scheme):
        assert "Traceback" not in answer.text


def test_the_image_route_shows_only_raster_images(open_network: Site) -> None:
    upstream = open_network.upstream
    upstream.add(
        "/not-an-image.png", b"<html><script>alert(1)</script></html>", content_type="image/png"
    )
    upstream.add(
        "/drawing.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        content_type="image/svg+xml",
    )
    upstream.add("/huge.png", PNG + b"\0" * (6 * 1024 * 1024), content_type="image/png")
    with open_network.client() as client:
        log_in(client)
        page = lxml.html.fromstring(desk_page(open_network, client).text)
        photo_src = next(i.get("src") for i in page.iter("img") if "photo.png" in i.get("src", ""))
        photo = client.get(photo_src)
        refused = {
            path: client.get("/review/images", params={"src": upstream.url(path)})
            for path in ("/not-an-image.png", "/drawing.svg", "/huge.png")
        }
    assert photo.status_code == 200, photo.text
    assert photo.content == PNG
    assert photo.headers["content-type"] == "image/png"
    assert photo.headers["x-content-type-options"] == "nosniff"
    assert photo.headers["cache-control"].startswith("private, max-age=")
    assert "sandbox" in photo.headers["content-security-policy"]
    assert refused["/not-an-image.png"].status_code == 415
    assert refused["/drawing.svg"].status_code == 415
    assert refused["/huge.png"].status_code == 502
    assert "MiB" in refused["/huge.png"].text or "allowed" in refused["/huge.png"].text


def test_an_edit_made_in_the_desk_keeps_the_upstream_image_address(open_network: Site) -> None:
    """The block editor sends the block as shown (images through the desk's route): what is
    saved, and published, is the original image address."""
    base = open_network.upstream.base_url
    pictures = next(d for d in open_network.drafts() if "pictures" in d["original_title"])
    with open_network.client() as client:
        csrf = log_in(client)
        page = lxml.html.fromstring(client.get(f"/review/drafts/{pictures['id']}").text)
        rows = [r for r in page.iter("tr") if "photo.png" in etree.tostring(r, encoding="unicode")]
        view = next(d for d in rows[0].iter("div") if "block-view" in (d.get("class") or ""))
        shown = (view.text or "") + "".join(
            etree.tostring(child, encoding="unicode", method="html") for child in view
        )
        index = rows[0].get("data-index")
        saved = client.post(
            f"/review/drafts/{pictures['id']}/blocks/{index}",
            data={"csrf": csrf, "version": str(pictures["version"]), "html": shown + " (vu)"},
            headers={"Accept": "application/json", "Origin": open_network.base_url},
        )
        assert saved.status_code == 200, saved.text
        assert "/review/images?src=" in saved.json()["html"]
        body = client.get(f"/api/drafts/{pictures['id']}", headers=TOKEN).json()["body_html"]
    assert f'src="{base}/photo.png"' in body
    assert "/review/images" not in body


# ---------------------------------------------------------------- no 500s


def test_ids_too_large_and_json_too_deep_are_404_and_422(guarded: Site) -> None:
    draft = guarded.drafts()[0]
    with guarded.client() as client:
        huge = {
            path: client.get(path, headers=TOKEN)
            for path in (
                "/articles/99999999999999999999",
                "/articles/2147483648",
                "/api/drafts/99999999999999999999",
            )
        }
        deep = client.patch(
            f"/api/drafts/{draft['id']}",
            content=b"[" * 100_000,
            headers={**TOKEN, "Content-Type": "application/json"},
        )
        deep_object = client.patch(
            f"/api/drafts/{draft['id']}",
            content=b'{"title": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
            headers={**TOKEN, "Content-Type": "application/json"},
        )
        log_in(client)
        desk = client.get("/review/drafts/99999999999999999999")
    for path, answer in huge.items():
        assert answer.status_code == 404, (path, answer.text)
        assert "Traceback" not in answer.text
    assert desk.status_code == 404
    for answer in (deep, deep_object):
        assert answer.status_code == 422, answer.text[:300]
        assert "nests" in answer.json()["error"]
        assert "Traceback" not in answer.text


def test_in_chromium_the_desk_page_requests_nothing_from_upstream(
    guarded: Site, request: pytest.FixtureRequest
) -> None:
    """Debian's Chromium (skipped without it, like tests/test_browser.py): every request
    the desk page makes goes to the desk itself, and the upstream host sees none."""
    browser = request.getfixturevalue("browser")
    pictures = next(d for d in guarded.drafts() if "pictures" in d["original_title"])
    before = {path: guarded.upstream.hits(path) for path in ("/photo.png", "/pixel.gif")}
    requested: list[str] = []
    context = browser.new_context(base_url=guarded.base_url)
    context.on("request", lambda sent: requested.append(sent.url))
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(guarded.base_url) else route.abort()
        ),
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/review/login")
    page.fill("input[name=name]", "Camille")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/review/")
    page.goto(f"/review/drafts/{pictures['id']}", wait_until="load")
    shown = page.locator("img").count()
    context.close()
    assert shown >= 4
    elsewhere = [url for url in requested if not url.startswith(guarded.base_url + "/")]
    assert elsewhere == []
    assert any("/review/images?src=" in url for url in requested)
    assert {path: guarded.upstream.hits(path) for path in before} == before
