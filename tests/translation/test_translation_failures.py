"""An engine that fails in every way engines fail: never an incomplete draft, and every
entry drafted once the engine is back.

Through the real pipeline: a Ghost-style newsletter polled from a local site, translated by
deep-translator against the local LibreTranslate API with its failure modes (429 with
Retry-After, 500, no answer at all, an empty text, ``null``, lines or placeholders missing).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from servers import LibreTranslateServer, UpstreamServer
from translation_desk import Desk, open_desk, outline

from aggregator.extraction.language import detect
from aggregator.translation.segment import parse_fragment, units

ARTICLES = ("Does Elon Musk want to buy OpenAI? Yes and no", "The courts and the executive order")
MEMBERS_ONLY = "Members only: what I learned from a year of paid newsletters"


def fail_429(server: LibreTranslateServer) -> None:
    server.fail_next(1, status=429, retry_after=120)


def fail_500(server: LibreTranslateServer) -> None:
    server.fail_next(2, status=500)


def never_answer(server: LibreTranslateServer) -> None:
    server.hang = True


def mode(name: str) -> Callable[[LibreTranslateServer], None]:
    def apply(server: LibreTranslateServer) -> None:
        server.mode = name  # type: ignore[assignment]

    return apply


def heal(server: LibreTranslateServer) -> None:
    server.hang = False
    server.mode = "translate"


FAILURES = {
    "429 with Retry-After": (fail_429, "429"),
    "500": (fail_500, "HTTP 500"),
    "no answer at all": (never_answer, "no answer within 1 s"),
    "empty text": (mode("empty"), "returned no text"),
    "null (None from deep-translator)": (mode("null"), "returned no text"),
    "lines missing": (mode("drop_lines"), "returned no text"),
}


def assert_complete_french_drafts(desk: Desk) -> None:
    entries = desk.entries()
    drafts = desk.drafts()
    assert sorted(drafts) == sorted(ARTICLES)
    for title in ARTICLES:
        draft, entry = drafts[title], entries[title]
        assert entry.state == "drafted" and entry.last_error is None
        assert entry.full_html is not None
        assert outline(draft.body_html) == outline(entry.full_html), title
        for unit in units(parse_fragment(draft.body_html)):
            assert detect(unit.plain) != "en", unit.plain
        assert draft.title != title
        assert draft.engine == "libre"
        assert draft.characters > 0 and draft.requests > 0


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failing_engine_makes_no_draft_and_every_entry_is_drafted_after(
    failure: str, tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    break_engine, reason = FAILURES[failure]
    desk = open_desk(tmp_path, upstream, libretranslate)
    desk.workers = 1  # so that what the first entry meets, the second meets too
    break_engine(libretranslate)

    report = desk.poll()

    assert desk.drafts() == {}
    assert report.entries["drafted"] == 0
    entries = desk.entries()
    for title in ARTICLES:
        entry = entries[title]
        assert entry.state == "extracted", (title, entry.state)
        assert entry.last_error, title
        assert entry.next_attempt_at is not None and entry.next_attempt_at > desk.moment[0]
    # The first entry meets the failure itself; the second may meet the paused engine.
    assert any(reason in (entries[t].last_error or "") for t in ARTICLES), entries
    assert entries[MEMBERS_ONLY].state == "skipped"
    # What was sent is counted, though nothing came of it.
    day = desk.moment[0].date().isoformat()
    spent = desk.store.usage(day)["libre"]
    assert spent.requests == libretranslate.requests > 0
    assert spent.characters >= sum(len(text) for text in libretranslate.texts) > 0

    heal(libretranslate)
    desk.heal_breakers()
    desk.moment[0] += timedelta(hours=1)
    desk.process()

    assert_complete_french_drafts(desk)
    assert desk.store.usage(day)["libre"].requests == libretranslate.requests


def test_retry_after_pauses_the_engine_and_the_entries(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    desk = open_desk(tmp_path, upstream, libretranslate, translation={"timeout": "5s"})
    desk.workers = 1
    libretranslate.fail_next(1, status=429, retry_after=600)

    desk.poll()

    assert libretranslate.requests == 1  # the second entry waits instead of hammering
    for title in ARTICLES:
        entry = desk.entries()[title]
        assert entry.next_attempt_at is not None
        assert entry.next_attempt_at >= desk.moment[0] + timedelta(seconds=590)
    desk.breaker_clock.now += 601
    desk.process()
    assert_complete_french_drafts(desk)


def test_markup_lost_every_time_still_makes_a_complete_draft_with_warnings(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    desk = open_desk(tmp_path, upstream, libretranslate)
    libretranslate.mode = "drop_placeholders"

    desk.poll()

    assert_complete_french_drafts(desk)
    musk = desk.drafts()[ARTICLES[0]]
    assert musk.warnings, "the editor must be told which blocks to check"
    assert all("check the wording" in warning for warning in musk.warnings)
    assert any("«While a group of young engineers" in warning for warning in musk.warnings)


def test_a_crash_between_batches_pays_only_for_what_is_left(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> None:
    # Small requests, so that the article takes several; the third one fails.
    desk = open_desk(tmp_path, upstream, libretranslate, translation=small_requests(libretranslate))
    upstream.add("/rss/", _only_first_article(upstream), etag="one")
    libretranslate.fail_next(1, status=500, after=2)

    desk.poll()
    assert desk.drafts() == {}
    paid_first = libretranslate.characters

    desk.process()

    assert list(desk.drafts()) == [ARTICLES[0]]
    paid_again = libretranslate.characters - paid_first
    full_cost = desk.drafts()[ARTICLES[0]].characters
    assert paid_again == full_cost
    assert paid_first + paid_again < 1.5 * _cost_without_failure(tmp_path, upstream)


def small_requests(server: LibreTranslateServer) -> dict[str, object]:
    return {"libre": {"url": server.url("/"), "api_key": "test", "max_chars": 400}}


def _only_first_article(upstream: UpstreamServer) -> str:
    from translation_desk import ghost_feed

    feed = ghost_feed(upstream.base_url)
    first_end = feed.index("</item>") + len("</item>")
    return feed[:first_end] + "</channel></rss>"


def _cost_without_failure(tmp_path: Path, upstream: UpstreamServer) -> int:
    with LibreTranslateServer() as fresh:
        desk = open_desk(tmp_path / "clean", upstream, fresh, translation=small_requests(fresh))
        upstream.add("/rss/", _only_first_article(upstream), etag="one")
        desk.poll()
        return fresh.characters
