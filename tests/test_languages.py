"""A newsletter translated into two languages (``[[feeds]] languages = ["fr", "es"]``),
through the real pipeline: one draft per language, each reviewed and published on its own,
feeds and pages per language linked to each other with ``hreflang``, read by newsboat and
the ``reader`` library; and what ``check-config`` says of a language it does not know.

The feed is ``town_feeds.town_feed``: plain English sentences whose words the local
LibreTranslate server's English -> French and English -> Spanish tables know.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lxml.html
import pytest
from conftest import WriteConfig, aggregator_process, run_cli, run_cli_json
from feedcheck import atom_problems, json_feed_problems, rss_problems, served_problems
from lxml import etree
from newsroom import free_port, log_in
from nginx import documented_nginx_server
from reader import make_reader
from servers import LibreTranslateServer, UpstreamServer
from town_feeds import town_feed
from upstream_paths import REVIEW

from aggregator import config
from aggregator.store import Store
from aggregator.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ATOM = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NEWSBOAT = shutil.which("newsboat")
STRICT = os.environ.get("AGGREGATOR_TEST_STRICT") == "1"
TWO_LANGUAGES = '[defaults]\nlanguages = ["fr", "es"]'


def _feed(upstream: UpstreamServer, count: int) -> str:
    return town_feed(
        upstream.base_url,
        count,
        channel="Town Weekly",
        title=lambda n: f"The market in issue {n}",
        author="Ana Town",
    )


@pytest.fixture
def two_languages(
    tmp_path: Path,
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
) -> Path:
    (tmp_path / "review-password").write_text("secret-password\n", encoding="utf-8")
    (tmp_path / "api-tokens").write_text("", encoding="utf-8")
    upstream.add("/feed.xml", _feed(upstream, 2), content_type="application/rss+xml")
    path = write_config(
        [{"url": upstream.url("/feed.xml"), "name": "Town Weekly", "full_text": "feed"}],
        extra=f"{REVIEW}\n{TWO_LANGUAGES}",
    )
    run_cli(path, "poll")
    return path


@contextmanager
def _desk(path: Path, *, logged_in: bool = True) -> Iterator[TestClient]:
    """The web app of the config at ``path``, in this process; an editor logged in."""
    settings = config.load(path)
    store = Store.from_settings(settings)
    try:
        client = TestClient(
            create_app(settings, store), base_url=settings.server.base_url, follow_redirects=False
        )
        if logged_in:
            log_in(client, password="secret-password")
        yield client
    finally:
        store.close()


def _drafts(path: Path, *args: str) -> list[dict[str, object]]:
    drafts = run_cli_json(path, "drafts", "list", "--json", *args)
    assert isinstance(drafts, list)
    return drafts


def test_each_language_gets_its_own_draft_reviewed_on_its_own(
    two_languages: Path, libretranslate: LibreTranslateServer
) -> None:
    drafts = _drafts(two_languages)
    assert sorted(d["language"] for d in drafts) == ["es", "es", "fr", "fr"]
    spanish = _drafts(two_languages, "--language", "es")
    assert {d["language"] for d in spanish} == {"es"} and len(spanish) == 2
    titles = {d["language"]: d["title"] for d in drafts if "1" in str(d["original_title"])}
    assert titles == {"fr": "Le market dans issue 1", "es": "El mercado en número 1"}
    # Approving the Spanish one leaves the French one waiting for its own review.
    one = next(d for d in spanish if "1" in str(d["original_title"]))
    run_cli(two_languages, "drafts", "approve", str(one["id"]))
    statuses = {
        (d["language"], d["id"]): d["status"] for d in _drafts(two_languages, "--status", "all")
    }
    assert statuses[("es", one["id"])] == "approved"
    assert sorted(s for (lang, _), s in statuses.items() if lang == "fr") == ["pending", "pending"]
    shown = run_cli_json(two_languages, "drafts", "show", str(one["id"]), "--json")
    assert isinstance(shown, dict)
    assert shown["target_language"] == "es"
    assert (
        "Fuente: " in shown["credit_html"]
        and "artículo original de Ana Town" in shown["credit_html"]
    )
    assert shown["article_url"].endswith(f"/es/articles/{one['id']}")
    [feed] = run_cli_json(two_languages, "feeds", "list", "--json")  # type: ignore[misc]
    assert feed["settings"]["languages"] == ["fr", "es"]
    # Each target was asked of the engine: two languages, one request set each.
    assert {"fr", "es"} <= set(libretranslate.targets)


def test_two_languages_publish_two_feeds_linked_by_hreflang(
    two_languages: Path, tmp_path: Path
) -> None:
    drafts = _drafts(two_languages)
    run_cli(two_languages, "drafts", "approve", *(str(d["id"]) for d in drafts))
    by_language = {
        lang: {d["original_title"]: d["id"] for d in drafts if d["language"] == lang}
        for lang in ("fr", "es")
    }
    base_url = config.load(two_languages).server.base_url
    with aggregator_process(two_languages, base_url, "serve"):
        fetched = {
            path: _get(base_url + path)
            for path in (
                "/feeds/published.atom", "/es/feeds/published.atom", "/fr/feeds/published.atom",
                "/es/feeds/published.rss", "/es/feeds/published.json", "/es/", "/",
            )
        }  # fmt: skip
        for lang, ids in by_language.items():
            for draft_id in ids.values():
                prefix = "" if lang == "fr" else "/es"
                fetched[f"{prefix}/articles/{draft_id}"] = _get(
                    f"{base_url}{prefix}/articles/{draft_id}"
                )
        readers = _read_with_reader(
            [f"{base_url}/feeds/published.atom", f"{base_url}/es/feeds/published.atom"],
            tmp_path / "reader.sqlite",
        )
        newsboat = {
            path: _read_with_newsboat(base_url + path, tmp_path / path.strip("/").replace("/", "-"))
            for path in ("/feeds/published.atom", "/es/feeds/published.atom")
        }

    # Every language is in the publication directory, for any web server to serve.
    current = Path(config.load(two_languages).publish.directory) / "current"
    for written in ("index.html", "es/index.html", "fr/index.html", "es/feeds/published.atom"):
        assert (current / written).is_file() and (current / f"{written}.gz").is_file(), written

    # Every feed of both languages is validator-clean.
    for path, (content_type, body) in fetched.items():
        fmt = path.rsplit(".", 1)[-1]
        if fmt in ("atom", "rss", "json"):
            check = {"atom": atom_problems, "rss": rss_problems, "json": json_feed_problems}[fmt]
            assert check(body, base_url + path) == [], path
            assert served_problems(fmt, content_type, body) == [], path

    french = etree.fromstring(fetched["/feeds/published.atom"][1])
    spanish = etree.fromstring(fetched["/es/feeds/published.atom"][1])
    assert french.get(XML_LANG) == "fr" and spanish.get(XML_LANG) == "es"
    assert {e.get(XML_LANG) for e in french.iter(f"{ATOM}entry")} == {"fr"}
    assert {e.get(XML_LANG) for e in spanish.iter(f"{ATOM}entry")} == {"es"}
    assert len(list(spanish.iter(f"{ATOM}entry"))) == 2
    # Each entry links to itself and to its translation, each link naming its language.
    for entry in spanish.iter(f"{ATOM}entry"):
        links = {
            link.get("hreflang"): link.get("href")
            for link in entry.findall(f"{ATOM}link")
            if link.get("rel") == "alternate"
        }
        es_id = int(links["es"].rsplit("/", 1)[1])
        original = next(t for t, i in by_language["es"].items() if i == es_id)
        assert links == {
            "es": f"{base_url}/es/articles/{es_id}",
            "fr": f"{base_url}/articles/{by_language['fr'][original]}",
        }
    # /fr/ is the French feed again, under its own self link.
    fr_again = etree.fromstring(fetched["/fr/feeds/published.atom"][1])
    assert [e.findtext(f"{ATOM}title") for e in fr_again.iter(f"{ATOM}entry")] == [
        e.findtext(f"{ATOM}title") for e in french.iter(f"{ATOM}entry")
    ]

    # The Spanish page speaks Spanish, credits in Spanish and links to the French one.
    es_id = by_language["es"]["The market in issue 1"]
    fr_id = by_language["fr"]["The market in issue 1"]
    page = lxml.html.fromstring(fetched[f"/es/articles/{es_id}"][1])
    assert page.get("lang") == "es"
    assert page.findtext(".//h1") == "El mercado en número 1"
    alternates = {
        link.get("hreflang"): link.get("href")
        for link in page.iter("link")
        if link.get("rel") == "alternate" and link.get("hreflang")
    }
    assert alternates == {"fr": f"/articles/{fr_id}"}
    assert "Fuente: " in page.find_class("credit")[0].text_content()
    french_page = lxml.html.fromstring(fetched[f"/articles/{fr_id}"][1])
    assert french_page.get("lang") == "fr"
    assert "Source : " in french_page.find_class("credit")[0].text_content()
    assert {
        link.get("hreflang"): link.get("href")
        for link in french_page.iter("link")
        if link.get("rel") == "alternate" and link.get("hreflang")
    } == {"es": f"/es/articles/{es_id}"}
    home = lxml.html.fromstring(fetched["/es/"][1])
    assert home.get("lang") == "es"
    assert {a.get("href") for a in home.cssselect("h2 a")} == {
        f"/es/articles/{i}" for i in by_language["es"].values()
    }

    # Feed readers read both languages.
    assert (
        readers["/feeds/published.atom"]
        == {title for title in readers["/feeds/published.atom"] if title.startswith("Le market")}
        and len(readers["/feeds/published.atom"]) == 2
    )
    assert readers["/es/feeds/published.atom"] == {
        "El mercado en número 1", "El mercado en número 2"
    }  # fmt: skip
    if NEWSBOAT is not None:
        assert newsboat["/es/feeds/published.atom"] == readers["/es/feeds/published.atom"]
        assert newsboat["/feeds/published.atom"] == readers["/feeds/published.atom"]


def _get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers["Content-Type"], response.read()


def _read_with_reader(urls: list[str], database: Path) -> dict[str, set[str]]:
    reader = make_reader(str(database))
    try:
        for url in urls:
            reader.add_feed(url)
        reader.update_feeds()
        for url in urls:
            assert reader.get_feed(url).last_exception is None, url
        seen: dict[str, set[str]] = {}
        for entry in reader.get_entries():
            path = "/" + entry.feed_url.split("/", 3)[3]
            seen.setdefault(path, set()).add(entry.title or "")
        return seen
    finally:
        reader.close()


def _read_with_newsboat(url: str, tmp_path: Path) -> set[str] | None:
    if NEWSBOAT is None:
        if STRICT:
            pytest.fail("newsboat is missing; AGGREGATOR_TEST_STRICT=1 requires it")
        return None
    from publishing.test_feed_readers import newsboat_reads

    tmp_path.mkdir()
    title, items = newsboat_reads(url, tmp_path / "newsboat")
    assert title == "Newsletters en français"
    return {item[0] for item in items}


@pytest.mark.parametrize(
    ("languages", "expected"),
    [
        ('["fr", "xx"]', "'feeds[0].languages[1]' must be a language code"),
        ('["fr", "fr"]', "'feeds[0].languages[1]': 'fr' is listed twice"),
        ('["en"]', "'feeds[0].languages[0]': 'en' is a language the articles are translated"),
    ],
)
def test_check_config_names_the_feed_and_the_language_it_does_not_take(
    tmp_path: Path, languages: str, expected: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[feeds]]\nurl = "https://news.example/feed"\nlanguages = {languages}\n',
        encoding="utf-8",
    )
    result = run_cli(path, "check-config", check=False)
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr and str(path) in result.stderr


def test_check_config_takes_a_glossary_per_language(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[translation.glossaries.es]\nforce = { "newsletter" = "boletín" }\n'
        '[translation.glossaries.xx]\nkeep = ["Ghost"]\n',
        encoding="utf-8",
    )
    result = run_cli(path, "check-config", check=False)
    assert result.returncode == 1
    assert "'translation.glossaries.xx' must be a language code" in result.stderr


def test_memory_glossary_and_budget_are_per_language_pair(
    tmp_path: Path,
    write_config: WriteConfig,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
) -> None:
    upstream.add("/feed.xml", _feed(upstream, 1), content_type="application/rss+xml")
    path = write_config(
        [{"url": upstream.url("/feed.xml"), "name": "Town Weekly", "full_text": "feed"}],
        extra="daily_characters = 100000\n"
        '[translation.glossaries.es]\nforce = { "market" = "mercadillo" }\n'
        f"{TWO_LANGUAGES}",
    )
    run_cli(path, "poll")
    titles = {d["language"]: d["title"] for d in _drafts(path)}
    # The Spanish pair's glossary applies to the Spanish draft only.
    assert titles == {"fr": "Le market dans issue 1", "es": "El mercadillo en número 1"}
    # Each pair's use is counted, and budgeted, on its own.
    status = run_cli(path, "status").stdout
    sent = libretranslate.characters
    budgets = re.findall(r"budget :\s+(libre(?::es)?) : ([\d\s]+) caractères sur", status)
    per_language = {account: int(re.sub(r"\s", "", used)) for account, used in budgets}
    assert set(per_language) == {"libre", "libre:es"}, status
    assert sum(per_language.values()) == sent and min(per_language.values()) > 0, status
    # Retranslating the Spanish draft of an unchanged article asks the engine nothing:
    # its blocks are in the en -> es pair's memory (and the French ones are not used).
    asked = len(libretranslate.targets)
    spanish = [str(d["id"]) for d in _drafts(path) if d["language"] == "es"]
    run_cli(path, "drafts", "retranslate", *spanish)
    run_cli(path, "poll")
    assert libretranslate.targets[asked:] == []
    assert {d["language"]: d["title"] for d in _drafts(path)} == titles


def test_the_desk_queue_filters_by_language(two_languages: Path) -> None:
    with _desk(two_languages) as client:
        everything = lxml.html.fromstring(client.get("/review/").text)
        spanish = lxml.html.fromstring(client.get("/review/?language=es").text)
        feeds = lxml.html.fromstring(client.get("/review/feeds").text)
    badges = [b.text_content() for b in everything.find_class("language")]
    assert sorted(badges) == ["es", "es", "fr", "fr"]
    rows = spanish.find_class("queue-row")
    assert len(rows) == 2
    assert [b.text_content() for b in spanish.find_class("language")] == ["es", "es"]
    current = spanish.cssselect('nav.language-filter a[aria-current="page"]')
    assert [a.get("href") for a in current] == ["/review/?language=es"]
    # The Feeds page says which languages each feed is translated into.
    [languages] = feeds.find_class("languages")
    assert languages.text_content() == "Français · Español"


def test_a_changed_original_redrafts_the_unreviewed_translation_only(
    two_languages: Path, upstream: UpstreamServer
) -> None:
    first = {d["language"]: d for d in _drafts(two_languages) if "1" in str(d["original_title"])}
    run_cli(two_languages, "drafts", "approve", str(first["fr"]["id"]))
    changed = _feed(upstream, 2).replace("for paragraph 0.", "for paragraph 0, once more.", 1)
    upstream.add("/feed.xml", changed, content_type="application/rss+xml")
    run_cli(two_languages, "poll")
    after = {
        d["language"]: d
        for d in _drafts(two_languages, "--status", "all")
        if "1" in str(d["original_title"])
    }
    # The French translation stays published as reviewed, flagged for the editor.
    assert after["fr"]["status"] == "approved" and after["fr"]["stale"] is True
    assert after["fr"]["version"] == first["fr"]["version"] + 1  # approved, nothing more
    # The Spanish one was not reviewed yet: it follows the new original.
    assert after["es"]["status"] == "pending" and after["es"]["version"] > first["es"]["version"]
    shown = run_cli_json(two_languages, "drafts", "show", str(after["es"]["id"]), "--json")
    assert isinstance(shown, dict) and "para párrafo 0, once más." in shown["body_html"]


def test_the_desk_draft_page_links_the_article_in_its_other_languages(two_languages: Path) -> None:
    drafts = {d["language"]: d for d in _drafts(two_languages) if "1" in str(d["original_title"])}
    run_cli(two_languages, "drafts", "approve", str(drafts["es"]["id"]))
    with _desk(two_languages) as client:
        page = lxml.html.fromstring(client.get(f"/review/drafts/{drafts['es']['id']}").text)
    [sibling] = page.find_class("translation")
    assert sibling.get("href") == f"/review/drafts/{drafts['fr']['id']}"
    assert sibling.get("hreflang") == "fr"
    assert page.get_element_by_id("title").get("lang") == "es"
    published = [a for a in page.iter("a") if a.get("href", "").endswith(f"/{drafts['es']['id']}")]
    assert f"/es/articles/{drafts['es']['id']}" in {a.get("href") for a in published}


def test_nginx_serves_every_language_from_the_publication_directory(
    two_languages: Path, tmp_path: Path
) -> None:
    from web.test_nginx import fetch, nginx_serving, require_nginx, same_answer

    require_nginx()
    drafts = _drafts(two_languages)
    run_cli(two_languages, "drafts", "approve", *(str(d["id"]) for d in drafts))
    spanish = next(d["id"] for d in drafts if d["language"] == "es")
    settings = config.load(two_languages)
    publication = Path(settings.publish.directory)
    ours = settings.server.port
    paths = (
        "/es/", "/fr/", "/", "/es/feeds/published.atom", "/es/feeds/published.json",
        "/fr/feeds/published.rss", "/es/feeds/sources/town-weekly.atom", f"/es/articles/{spanish}",
    )  # fmt: skip
    with aggregator_process(two_languages, settings.server.base_url):
        server = documented_nginx_server(publication, free_port(), ours)
        (tmp_path / "nginx").mkdir()
        with nginx_serving(tmp_path / "nginx", server) as theirs:
            for path in paths:
                direct = same_answer(ours, theirs, path)
                again = fetch(theirs, path, {"If-None-Match": direct.headers["etag"]})
                assert again.status == 304, path
                file = publication / "current" / path.lstrip("/")
                file = file / "index.html" if path.endswith("/") else file
                assert file.is_file(), path  # nginx read it from the directory
            # A page of the Spanish home beyond the first is aggregator serve's.
            direct, through_nginx = fetch(ours, "/es/?page=2"), fetch(theirs, "/es/?page=2")
            assert (through_nginx.status, through_nginx.body) == (direct.status, direct.body)


def test_the_api_lists_the_drafts_of_one_language(two_languages: Path) -> None:
    (two_languages.parent / "api-tokens").write_text("bot:languages-token-1234:read\n", "utf-8")
    bearer = {"Authorization": "Bearer languages-token-1234"}
    with _desk(two_languages, logged_in=False) as client:
        spanish = client.get("/api/drafts?language=es", headers=bearer)
        everything = client.get("/api/drafts", headers=bearer)
    assert spanish.status_code == 200, spanish.text
    assert [d["language"] for d in spanish.json()["drafts"]] == ["es", "es"]
    assert sorted(d["language"] for d in everything.json()["drafts"]) == ["es", "es", "fr", "fr"]
