"""Per-feed engines and the editor's house style, through the real pipeline.

Two newsletters polled from a local site: the Ghost-style one and the excerpts one (whose
articles are read from their pages). One may be on the LLM engine (``LLMServer`` on
127.0.0.1, through the official ``openai`` client) while the other stays on the default
LibreTranslate-compatible server; an editor's corrections in one feed are the examples the
model is shown for that feed's later articles, never for another feed's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer
from newsroom import EXCERPTS_FEED_PATH, MUSK_TITLE, SIMDJSON_TITLE, serve_newsletters
from servers import LibreTranslateServer, UpstreamServer
from translation_desk import FEED_PATH, Desk, ghost_feed, open_desk

from aggregator.extraction.language import detect
from aggregator.translation.segment import parse_fragment, text_of_inner, units

COURTS_TITLE = "The courts and the executive order"
WORDPRESS_TITLE = "Want to See a More Diverse WordPress Contributor Community? So Do We."
GHOST = ("The Torment Nexus", (MUSK_TITLE, COURTS_TITLE))
EXCERPTS = ("Excerpts Weekly", (SIMDJSON_TITLE, WORDPRESS_TITLE))


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


def two_feeds_desk(
    tmp_path: Path,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    llm: LLMServer,
    *,
    engine: str = "libre",
    ghost: dict[str, Any] | None = None,
    excerpts: dict[str, Any] | None = None,
) -> Desk:
    serve_newsletters(upstream)
    desk = open_desk(
        tmp_path,
        upstream,
        libretranslate,
        translation={
            "engine": engine,
            "timeout": "5s",
            "llm": {"base_url": llm.base_url, "model": "house-model"},
        },
        feeds=[
            {"url": upstream.url(FEED_PATH), "name": GHOST[0], **(ghost or {})},
            {"url": upstream.url(EXCERPTS_FEED_PATH), "name": EXCERPTS[0], **(excerpts or {})},
        ],
    )
    desk.workers = 1
    return desk


def sent_to_llm(llm: LLMServer) -> list[dict[str, Any]]:
    """The work object of every chat request the model received."""
    return [json.loads(request.messages[-1]["content"]) for request in llm.requests]


def test_a_feed_on_the_llm_reaches_only_the_llm_and_the_other_only_the_default_engine(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    desk = two_feeds_desk(tmp_path, upstream, libretranslate, llm, ghost={"engine": "llm"})

    report = desk.poll()

    assert report.entries["drafted"] == 4, report
    drafts = desk.drafts()
    for title in GHOST[1]:
        assert drafts[title].engine == "llm", title
    for title in EXCERPTS[1]:
        assert drafts[title].engine == "libre", title
    for draft in drafts.values():
        french = units(parse_fragment(draft.body_html))
        assert french and detect(text_of_inner(draft.body_html)) == "fr", draft.title
    # The model saw the Ghost newsletter's articles, and only those.
    batches = sent_to_llm(llm)
    assert {batch["title"] for batch in batches} == set(GHOST[1])
    # LibreTranslate saw the excerpts' articles, and nothing of the Ghost newsletter.
    to_libre = "\n".join(libretranslate.texts)
    assert SIMDJSON_TITLE in to_libre and WORDPRESS_TITLE in to_libre
    assert MUSK_TITLE not in to_libre and COURTS_TITLE not in to_libre
    sent_to_model = " ".join(unit["text"] for batch in batches for unit in batch["units"])
    assert "Toberoff" in sent_to_model and "Toberoff" not in to_libre  # the Musk article's
    assert "simdjson" not in sent_to_model


def test_a_feed_on_the_default_engine_beside_a_default_llm_never_reaches_the_model(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    desk = two_feeds_desk(
        tmp_path, upstream, libretranslate, llm, engine="llm", excerpts={"engine": "libre"}
    )

    desk.poll()

    drafts = desk.drafts()
    assert {title: drafts[title].engine for title in (*GHOST[1], *EXCERPTS[1])} == {
        **dict.fromkeys(GHOST[1], "llm"),
        **dict.fromkeys(EXCERPTS[1], "libre"),
    }
    assert {batch["title"] for batch in sent_to_llm(llm)} == set(GHOST[1])
    assert MUSK_TITLE not in "\n".join(libretranslate.texts)


def test_two_named_llm_instances_each_translate_their_own_feeds_and_count_their_own_tokens(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    """[translation.llm] for one newsletter, [translation.llms.premium] (another endpoint,
    another model, its own prices) for the other: each request reaches its own server."""
    serve_newsletters(upstream)
    with LLMServer() as premium:
        desk = open_desk(
            tmp_path,
            upstream,
            libretranslate,
            translation={
                "engine": "llm",
                "timeout": "5s",
                "llm": {"base_url": llm.base_url, "model": "house-model"},
                "llms": {
                    "premium": {
                        "base_url": premium.base_url,
                        "model": "premium-model",
                        "price_input_per_mtok": 3.0,
                        "price_output_per_mtok": 15.0,
                    }
                },
            },
            feeds=[
                {"url": upstream.url(FEED_PATH), "name": GHOST[0], "engine": "premium"},
                {"url": upstream.url(EXCERPTS_FEED_PATH), "name": EXCERPTS[0]},
            ],
        )
        desk.workers = 1
        report = desk.poll()
        to_premium = sent_to_llm(premium)
        premium_models = {request.model for request in premium.requests}

    assert report.entries["drafted"] == 4, report
    drafts = desk.drafts()
    assert {title: drafts[title].engine for title in (*GHOST[1], *EXCERPTS[1])} == {
        **dict.fromkeys(GHOST[1], "premium"),
        **dict.fromkeys(EXCERPTS[1], "llm"),
    }
    assert {batch["title"] for batch in to_premium} == set(GHOST[1])
    assert premium_models == {"premium-model"}
    assert {batch["title"] for batch in sent_to_llm(llm)} == set(EXCERPTS[1])
    assert {request.model for request in llm.requests} == {"house-model"}
    # Only the premium instance is priced: its drafts cost money, the others count tokens.
    for title in GHOST[1]:
        assert drafts[title].cost and drafts[title].cost > 0, title
    for title in EXCERPTS[1]:
        assert not drafts[title].cost and drafts[title].prompt_tokens, title
    assert libretranslate.texts == []


def test_an_editors_corrections_are_the_examples_of_the_same_feeds_later_articles_only(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    desk = two_feeds_desk(tmp_path, upstream, libretranslate, llm, engine="llm")
    # At first the Ghost newsletter has only its article about the courts.
    full = ghost_feed(upstream.base_url)
    musk_item = re.search(r"<item>.*?</item>", full, re.S)
    assert musk_item and MUSK_TITLE in musk_item.group(0)
    upstream.add(FEED_PATH, full.replace(musk_item.group(0), ""), etag="v0")
    upstream.remove(EXCERPTS_FEED_PATH)
    desk.poll()
    assert list(desk.drafts()) == [COURTS_TITLE]
    assert all("examples" not in batch for batch in sent_to_llm(llm))
    courts = desk.drafts()[COURTS_TITLE]
    desk.store.edit(
        courts.id, actor="Camille", now=desk.moment[0], title="Les tribunaux face au décret"
    )

    # The Musk article comes out, and the excerpts newsletter is read for the first time.
    before = len(llm.requests)
    upstream.add(FEED_PATH, full, etag="v1")
    serve_newsletters(upstream)
    desk.poll()

    assert sorted(desk.drafts()) == sorted([COURTS_TITLE, MUSK_TITLE, *EXCERPTS[1]])
    later = sent_to_llm(llm)[before:]
    correction = {
        "source": COURTS_TITLE,
        "translation": "Les tribunaux face au décret",
    }
    musk = [batch for batch in later if batch["title"] == MUSK_TITLE]
    others = [batch for batch in later if batch["title"] in EXCERPTS[1]]
    assert musk and all(batch["examples"] == [correction] for batch in musk)
    assert others and all("examples" not in batch for batch in others)
