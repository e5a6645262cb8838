"""The test servers themselves, checked with the real clients the aggregator uses."""

from __future__ import annotations

import gzip
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import httpx
import py3langid
import pytest
import requests
from deep_translator import LibreTranslator
from deep_translator.exceptions import AuthorizationException, ServerException
from servers import LibreTranslateServer, UpstreamServer, dictionary_translate

DATA_DIR = Path(__file__).parent / "data"
LAST_MODIFIED = "Wed, 12 Feb 2025 15:20:41 GMT"


def http_client() -> httpx.Client:
    # trust_env=False: no proxy from the environment may stand between the test and 127.0.0.1.
    return httpx.Client(timeout=10, trust_env=False)


def translator_for(server: LibreTranslateServer, api_key: str = "test") -> LibreTranslator:
    return LibreTranslator(source="en", target="fr", api_key=api_key, custom_url=server.url("/"))


def wait_until_received(server: LibreTranslateServer, count: int) -> None:
    """Block until the server has received ``count`` /translate calls (10 s at most)."""
    deadline = time.monotonic() + 10
    while server.requests < count and time.monotonic() < deadline:
        time.sleep(0.01)  # synchronisation with another thread, not a timing assertion
    assert server.requests == count


class BlockTextCollector(HTMLParser):
    """Collects the text of each translatable block (p, h2, li, blockquote, figcaption)."""

    BLOCKS = frozenset({"p", "h2", "li", "blockquote", "figcaption"})

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._depth = 0
        self._current: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS and self._depth:
            self._depth -= 1
            if not self._depth:
                text = "".join(self._current).strip()
                if text:
                    self.blocks.append(text)
                self._current = []

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._current.append(data)


def crafted_feed_blocks() -> list[str]:
    parsed = feedparser.parse((DATA_DIR / "torment-nexus-like.rss").read_bytes())
    collector = BlockTextCollector()
    for entry in parsed.entries:
        collector.feed(entry.content[0].value)
    return collector.blocks


# --------------------------------------------------------------------------------------------
# UpstreamServer


def test_upstream_serves_routes_and_answers_404_for_unknown_paths(
    upstream: UpstreamServer,
) -> None:
    feed_url = upstream.add(
        "/rss/", "<rss version='2.0'/>", headers={"Cache-Control": "max-age=60"}
    )
    with http_client() as client:
        feed = client.get(feed_url)
        missing = client.get(upstream.url("/nowhere"))
    assert feed.status_code == 200
    assert feed.content == b"<rss version='2.0'/>"
    assert feed.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert feed.headers["cache-control"] == "max-age=60"
    assert missing.status_code == 404
    assert upstream.hits("/rss/") == 1
    assert upstream.hits("/nowhere") == 1


def test_upstream_records_method_path_and_lowercased_headers(upstream: UpstreamServer) -> None:
    upstream.add("/page", b"<html></html>", content_type="text/html; charset=utf-8")
    with http_client() as client:
        client.get(upstream.url("/page?utm=1"), headers={"User-Agent": "aggregator-test"})
        client.head(upstream.url("/page"))
    first, second = upstream.requests
    assert (first.method, first.path) == ("GET", "/page?utm=1")
    assert first.headers["user-agent"] == "aggregator-test"
    assert (second.method, second.path) == ("HEAD", "/page")
    assert upstream.hits("/page") == 2
    assert upstream.hits("/page?utm=1") == 1


def test_upstream_answers_304_to_matching_validators(upstream: UpstreamServer) -> None:
    url = upstream.add("/rss/", b"<rss/>", etag="v1", last_modified=LAST_MODIFIED)
    with http_client() as client:
        first = client.get(url)
        assert first.status_code == 200
        assert first.headers["etag"] == '"v1"'
        assert first.headers["last-modified"] == LAST_MODIFIED

        by_etag = client.get(url, headers={"If-None-Match": first.headers["etag"]})
        by_weak_etag = client.get(url, headers={"If-None-Match": 'W/"v0", W/"v1"'})
        by_date = client.get(url, headers={"If-Modified-Since": LAST_MODIFIED})
        stale_etag = client.get(url, headers={"If-None-Match": '"v0"'})
        older_date = client.get(url, headers={"If-Modified-Since": "Tue, 11 Feb 2025 00:00:00 GMT"})
        # If-None-Match decides alone when present (RFC 9110 13.2.2), even if the date matches.
        stale_etag_fresh_date = client.get(
            url, headers={"If-None-Match": '"v0"', "If-Modified-Since": LAST_MODIFIED}
        )

    for not_modified in (by_etag, by_weak_etag, by_date):
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == '"v1"'
    for modified in (stale_etag, older_date, stale_etag_fresh_date):
        assert modified.status_code == 200
        assert modified.content == b"<rss/>"
    assert upstream.hits("/rss/") == 7


def test_upstream_gzip_route_sends_compressed_bytes(upstream: UpstreamServer) -> None:
    feed = (DATA_DIR / "torment-nexus-like.rss").read_bytes()
    url = upstream.add("/rss/", feed, gzip=True)
    with http_client() as client:
        decoded = client.get(url)
        with client.stream("GET", url) as raw_response:
            raw = b"".join(raw_response.iter_raw())
    assert decoded.headers["content-encoding"] == "gzip"
    assert decoded.content == feed
    assert raw != feed
    assert len(raw) < len(feed)
    assert gzip.decompress(raw) == feed


def test_upstream_status_and_headers_are_sent_as_given(upstream: UpstreamServer) -> None:
    url = upstream.add(
        "/busy", "slow down", status=429, content_type="text/plain", headers={"Retry-After": "120"}
    )
    with http_client() as client:
        response = client.get(url)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "120"
    assert response.text == "slow down"


def test_upstream_delay_holds_the_answer_and_close_cuts_it_short() -> None:
    with UpstreamServer() as upstream:
        url = upstream.add("/slow", b"late", delay=60)
        with httpx.Client(timeout=0.5, trust_env=False) as client, pytest.raises(httpx.ReadTimeout):
            client.get(url)
        started = time.monotonic()
    # close() must not wait for the 60 s delay of the request still parked on the server.
    assert time.monotonic() - started < 10


# --------------------------------------------------------------------------------------------
# dictionary_translate


def test_dictionary_translation_keeps_lines_placeholders_and_unknown_tokens() -> None:
    source = (
        "The offer values the company at $97.4 billion.\n"
        "Keep ⟦1⟧ and {2} and [[3]] and <x4>this link</x4> as they are.\n"
        "\n"
        "I use GNU GCC 8.3 with json.loads at https://example.com/the/and, in the US."
    )
    translated = dictionary_translate(source)
    assert translated.count("\n") == source.count("\n")
    assert translated.split("\n")[2] == ""
    for kept in ("$97.4", "⟦1⟧", "{2}", "[[3]]", "<x4>", "</x4>", "GNU GCC 8.3", "json.loads"):
        assert kept in translated
    assert "https://example.com/the/and," in translated
    assert translated.endswith("dans le US.")
    assert translated.startswith("Le offre évalue le entreprise à $97.4 milliards.")


# --------------------------------------------------------------------------------------------
# LibreTranslateServer through deep-translator


def test_deep_translator_gets_french_for_every_crafted_feed_block(
    libretranslate: LibreTranslateServer,
) -> None:
    blocks = crafted_feed_blocks()
    # 13 blocks in item 1 (p, h2, blockquote, figcaption, li), 5 in item 2, 1 in item 3.
    assert len(blocks) == 19
    translator = translator_for(libretranslate)

    translations = [translator.translate(block) for block in blocks]

    for block, translation in zip(blocks, translations, strict=True):
        assert translation == dictionary_translate(block)
        assert translation != block
        assert py3langid.classify(translation)[0] == "fr", translation
    assert libretranslate.requests == len(blocks)
    assert libretranslate.characters == sum(len(block) for block in blocks)
    assert libretranslate.texts == blocks


def test_deep_translator_batch_and_multiline_text(libretranslate: LibreTranslateServer) -> None:
    translator = translator_for(libretranslate)
    multiline = "What the offer says\n\nThe courts and the executive order\n⟦1⟧"

    batch = translator.translate_batch(["Yes and no", multiline])

    assert batch[0] == "Oui et non"
    assert batch[1].split("\n") == [
        "Ce que le offre dit",
        "",
        "Le tribunaux et le exécutif décret",
        "⟦1⟧",
    ]
    # deep-translator's translate_batch is a loop: one request per text.
    assert libretranslate.requests == 2


def test_api_batches_from_json_and_form_bodies(libretranslate: LibreTranslateServer) -> None:
    with http_client() as client:
        as_json = client.post(
            libretranslate.url("/translate"),
            json={"q": ["the week", "the year"], "source": "en", "target": "fr", "format": "html"},
        )
        as_form = client.post(
            libretranslate.url("/translate"),
            data={"q": "<p>the <b>news</b></p>", "source": "auto", "target": "fr"},
        )
        languages = client.get(libretranslate.url("/languages"))
    assert as_json.json() == {"translatedText": ["le semaine", "le année"]}
    assert as_form.json()["translatedText"] == "<p>le <b>actualités</b></p>"
    assert as_form.json()["detectedLanguage"]["language"] == "en"
    assert libretranslate.requests == 2
    assert libretranslate.characters == len("the week") + len("the year") + 22
    codes = {language["code"]: language for language in languages.json()}
    assert codes["en"]["name"] == "English"
    assert "fr" in codes["en"]["targets"]
    assert "fr" in codes


def test_api_rejects_bad_requests(libretranslate: LibreTranslateServer) -> None:
    with http_client() as client:
        no_text = client.post(libretranslate.url("/translate"), data={"target": "fr"})
        wrong_target = client.post(
            libretranslate.url("/translate"), data={"q": "the", "source": "en", "target": "de"}
        )
        unknown_path = client.post(libretranslate.url("/detect"), data={"q": "the"})
    assert no_text.status_code == 400
    assert wrong_target.status_code == 400
    assert unknown_path.status_code == 404


def test_scheduled_failures_then_recovery(libretranslate: LibreTranslateServer) -> None:
    libretranslate.fail_next(2, status=429, retry_after=7)
    translator = translator_for(libretranslate)
    with http_client() as client:
        limited = client.post(
            libretranslate.url("/translate"), params={"q": "the", "source": "en", "target": "fr"}
        )
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    with pytest.raises(ServerException):
        translator.translate("the second call fails too")
    assert translator.translate("the third one works") == "le troisième un fonctionne"
    assert libretranslate.requests == 3


def test_empty_and_drop_lines_modes(libretranslate: LibreTranslateServer) -> None:
    translator = translator_for(libretranslate)
    libretranslate.mode = "empty"
    # deep-translator hands the empty string back as if it were a translation.
    assert translator.translate("the news") == ""
    libretranslate.mode = "drop_lines"
    assert translator.translate("the news\nthe week\nthe year") == "le actualités\nle semaine"
    libretranslate.mode = "translate"
    assert translator.translate("the news") == "le actualités"
    with pytest.raises(ValueError, match="mode"):
        libretranslate.mode = "shout"  # type: ignore[assignment]


def test_api_key_required_only_when_asked() -> None:
    with LibreTranslateServer(require_api_key=True) as server:
        with http_client() as client:
            without_key = client.post(
                server.url("/translate"), data={"q": "the", "source": "en", "target": "fr"}
            )
        assert without_key.status_code == 403
        assert translator_for(server, api_key="test").translate("the year") == "le année"
        # deep-translator refuses an empty key itself; a blank one reaches the server.
        with pytest.raises(AuthorizationException):
            translator_for(server, api_key=" ").translate("the year")


def test_hang_holds_calls_until_released(libretranslate: LibreTranslateServer) -> None:
    libretranslate.hang = True
    results: list[str] = []
    caller = threading.Thread(
        target=lambda: results.append(translator_for(libretranslate).translate("the news"))
    )
    caller.start()
    wait_until_received(libretranslate, 1)
    assert caller.is_alive()

    libretranslate.hang = False
    caller.join(timeout=10)
    assert results == ["le actualités"]


def test_close_does_not_wait_for_a_hanging_call() -> None:
    errors: list[BaseException] = []
    server = LibreTranslateServer().start()
    server.hang = True

    def call_without_timeout() -> None:
        # deep-translator sets no timeout: only the server closing the connection ends this.
        try:
            translator_for(server).translate("the news")
        except requests.ConnectionError as error:
            errors.append(error)

    caller = threading.Thread(target=call_without_timeout)
    caller.start()
    wait_until_received(server, 1)
    server.close()
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert len(errors) == 1
