"""An OpenAI-compatible LLM engine that misbehaves in every way models do: never an incomplete
draft, and every entry drafted once the model behaves.

Through the real pipeline: the Ghost-style newsletter of the other translation tests, polled
from a local site, translated by the engine (the official ``openai`` client) against
``LLMServer`` on 127.0.0.1, which speaks the chat-completions API and misbehaves on request.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import run_cli
from llm_server import HEADLINE_PREFIX, LLMServer, Misbehaviour
from openai import OpenAI
from servers import LibreTranslateServer, UpstreamServer, dictionary_translate
from translation_desk import FEED_PATH, Desk, ghost_feed, open_desk, outline

from aggregator import config as config_module
from aggregator.config import Duration, LLMSettings, TranslationSettings
from aggregator.extraction.language import detect
from aggregator.store import Store
from aggregator.translation.engines import Engine, build_engine
from aggregator.translation.glossary import Glossary
from aggregator.translation.llm import (
    DEFAULT_RETRY_AFTER,
    STYLE_HEADING,
    build_llm_engine,
    rate_limit_wait,
)
from aggregator.translation.segment import parse_fragment, text_of_inner, units
from aggregator.translation.translate import translate_article
from aggregator.translation.typography import typeset

ARTICLES = ("Does Elon Musk want to buy OpenAI? Yes and no", "The courts and the executive order")
MEMBERS_ONLY = "Members only: what I learned from a year of paid newsletters"


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


def llm_settings(server: LLMServer, **more: Any) -> dict[str, Any]:
    return {
        "engine": "llm",
        "timeout": "2s",
        "llm": {"base_url": server.base_url, "model": "house-model", **more},
    }


def llm_desk(
    tmp_path: Path,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    llm: LLMServer,
    **llm_options: Any,
) -> Desk:
    desk = open_desk(
        tmp_path, upstream, libretranslate, translation=llm_settings(llm, **llm_options)
    )
    desk.workers = 1  # the misbehaviours are met in order
    return desk


def assert_complete_french_drafts(
    desk: Desk, engine: str = "llm", titles: tuple[str, ...] = ARTICLES
) -> None:
    entries = desk.entries()
    drafts = desk.drafts()
    assert sorted(drafts) == sorted(titles)
    for title in titles:
        draft, entry = drafts[title], entries[title]
        assert entry.state == "drafted" and entry.last_error is None
        assert entry.full_html is not None
        assert outline(draft.body_html) == outline(entry.full_html), title
        french = units(parse_fragment(draft.body_html))
        english = units(parse_fragment(entry.full_html))
        for unit, source in zip(french, english, strict=True):
            assert detect(unit.plain) != "en", unit.plain
            # A unit merged into its neighbour would bring the neighbour's words with it.
            assert len(unit.plain) <= 1.5 * len(source.plain) + 10, (unit.plain, source.plain)
        assert draft.title != title and len(draft.title) <= 1.5 * len(title) + 10, draft.title
        assert draft.engine == engine
        assert draft.characters > 0 and draft.requests > 0


def test_articles_go_in_batches_of_units_and_come_back_as_french_drafts(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    desk = llm_desk(tmp_path, upstream, libretranslate, llm)

    report = desk.poll()

    assert report.entries["drafted"] == 2
    assert_complete_french_drafts(desk)
    assert libretranslate.requests == 0
    sent = llm.requests
    assert {request.model for request in sent} == {"house-model"}
    for request in sent:
        system, user = request.messages
        assert system["role"] == "system" and "« guillemets »" in system["content"]
        assert "vous" in system["content"]
        work = json.loads(user["content"])
        assert "into French" in system["content"]  # the languages are in the instructions
        assert work["title"] in ARTICLES
        assert work["units"], work
        assert request.body["stream"] is False
    # An article's units travel together: a few requests per article, not one per block.
    blocks = sum(len(request.units) for request in sent)
    assert len(sent) <= 4 < blocks


def ids(request: Any) -> list[str]:
    return [str(unit.get("id")) for unit in request.units]


def drain(server: LLMServer) -> None:
    """The model behaves again: what was queued is consumed by throw-away requests."""
    client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=1)
    while server.pending_misbehaviours:
        with contextlib.suppress(openai.APIError):
            client.chat.completions.create(
                model="drain", messages=[{"role": "user", "content": "Hello"}]
            )


ONCE = ("drop_id", "merge_units", "chatter", "english", "truncate", "lose_placeholders")


def test_the_publications_own_style_rules_follow_the_house_style_and_a_prompt_file_replaces_it(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    style = "- Tutoyez le lecteur.\n- Écrivez « 97 milliards de dollars », jamais « Md$ »."
    desk = llm_desk(tmp_path, upstream, libretranslate, llm, style=style)
    desk.poll()
    system = llm.requests[0].messages[0]["content"]
    assert "# House style" in system and "Tutoyez le lecteur." in system
    assert system.index("# House style") < system.index(STYLE_HEADING) < system.index("Tutoyez")

    house = tmp_path / "house.md"
    house.write_text("Translate $source_language into $target_language, tersely.\n", "utf-8")
    engine = build_llm_engine(
        config_module.from_dict(
            {"translation": llm_settings(llm, prompt_file=str(house), style=style)},
            tmp_path / "config.toml",
        ).translation
    )
    assert engine.instructions.startswith("Translate English into French, tersely.")
    assert "# House style" not in engine.instructions and "Tutoyez" in engine.instructions


@pytest.mark.parametrize("misbehaviour", [*ONCE, "invalid_json"])
def test_a_wrong_answer_is_asked_again_for_its_failed_units_only(
    misbehaviour: Misbehaviour,
    tmp_path: Path,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    llm: LLMServer,
) -> None:
    desk = llm_desk(tmp_path, upstream, libretranslate, llm)
    llm.misbehave(misbehaviour)

    report = desk.poll()

    assert report.entries["drafted"] == 2
    assert_complete_french_drafts(desk)
    first, again = llm.requests[:2]
    assert first.misbehaviour == misbehaviour and again.misbehaviour is None
    assert set(ids(again)) <= set(ids(first))
    if misbehaviour in ("drop_id", "merge_units", "truncate", "lose_placeholders"):
        # Only the units that came back wrong (or, cut short, half of them) are asked again.
        assert len(ids(again)) < len(ids(first))


PERSISTENT = {
    "drop_id": "did not come back",
    "chatter": "text around the JSON answer",
    "english": "came back untranslated",
    "truncate": "cut short",
    "lose_placeholders": "inline markup lost",
    "invalid_json": "not valid JSON",
    "hang": "no answer within 2 s",
    "rate_limit": "HTTP 429",
}


@pytest.mark.parametrize("misbehaviour", sorted(PERSISTENT))
def test_a_model_that_keeps_misbehaving_makes_no_draft_and_every_entry_is_drafted_after(
    misbehaviour: Misbehaviour,
    tmp_path: Path,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    llm: LLMServer,
) -> None:
    desk = llm_desk(tmp_path, upstream, libretranslate, llm)
    llm.misbehave(*[misbehaviour] * (3 if misbehaviour == "hang" else 80))

    desk.poll()

    # The second article has no inline markup to lose: it is drafted, whole.
    failing = ARTICLES[:1] if misbehaviour == "lose_placeholders" else ARTICLES
    assert_complete_french_drafts(desk, titles=tuple(t for t in ARTICLES if t not in failing))
    entries = desk.entries()
    for title in failing:
        entry = entries[title]
        assert entry.state == "extracted", (title, entry.state)
        assert entry.next_attempt_at is not None and entry.next_attempt_at > desk.moment[0]
    reason = PERSISTENT[misbehaviour]
    assert any(reason in (entries[t].last_error or "") for t in failing), entries
    assert entries[MEMBERS_ONLY].state == "skipped"
    assert libretranslate.requests == 0

    drain(llm)
    desk.heal_breakers()
    desk.moment[0] += timedelta(hours=1)
    desk.process()

    assert_complete_french_drafts(desk)


def test_a_rate_limit_pauses_the_engine_for_as_long_as_the_service_says(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    desk = llm_desk(tmp_path, upstream, libretranslate, llm)
    llm.retry_after = 600
    llm.misbehave("rate_limit")

    desk.poll()

    assert desk.drafts() == {}
    assert len(llm.requests) == 1  # the second article met the paused engine: nothing sent
    entries = desk.entries()
    for title in ARTICLES:
        entry = entries[title]
        assert entry.next_attempt_at is not None
        assert entry.next_attempt_at >= desk.moment[0] + timedelta(seconds=590), title
        assert "llm" in (entry.last_error or "")
    desk.moment[0] += timedelta(minutes=11)
    desk.breaker_clock.now += 601
    desk.process()
    assert_complete_french_drafts(desk)


def test_the_reset_headers_of_a_429_say_how_long_to_wait() -> None:
    spent = {"x-ratelimit-remaining-requests": "12", "x-ratelimit-remaining-tokens": "0"}
    assert rate_limit_wait({**spent, "x-ratelimit-reset-tokens": "6m0s"}) == 360
    assert rate_limit_wait({"x-ratelimit-reset-requests": "1h2m3.5s"}) == 3723.5
    assert rate_limit_wait({"x-ratelimit-reset-requests": "120ms"}) == pytest.approx(0.12)
    assert rate_limit_wait({"retry-after": "30", "x-ratelimit-reset-tokens": "6m"}) == 30
    assert rate_limit_wait({}) == DEFAULT_RETRY_AFTER


def llm_engine(server: LLMServer, **llm: Any) -> Engine:
    settings = TranslationSettings(
        engine="llm",
        timeout=Duration(5),
        llm=LLMSettings(base_url=server.base_url, model="house-model", **llm),
    )
    return build_engine(settings)


def test_a_unit_recalled_from_memory_is_never_sent(tmp_path: Path, llm: LLMServer) -> None:
    store = Store(f"sqlite:///{tmp_path}/memory.db")
    store.upgrade()
    shared = "<p>This letter is for the people who read the news about technology.</p>"
    engine = llm_engine(llm)
    translate_article(
        "One", "<p>The company was fast.</p>" + shared, engine, target_language="fr", memory=store
    )
    first = len(llm.requests)

    second = translate_article(
        "Two", "<h2>More</h2><p>The board was slow.</p>" + shared, engine,
        target_language="fr", memory=store,
    )  # fmt: skip

    sent = [unit["text"] for request in llm.requests[first:] for unit in request.units]
    assert sorted(sent) == ["More", "The board was slow.", "Two"]
    assert second.from_memory == 1
    assert dictionary_translate("the people who read the news") in second.body_html
    assert second.prompt_tokens > 0 and second.completion_tokens > 0


def test_the_title_units_around_glossary_and_examples_go_with_each_batch(
    llm: LLMServer,
) -> None:
    engine = llm_engine(llm, headline="adapt", batch_tokens=100, context_units=1)
    paragraphs = [f"<p>Paragraph {n} says that the board met the company.</p>" for n in range(12)]
    glossary = Glossary(keep=("OpenAI",), force=(("newsletter", "infolettre"),))

    done = translate_article(
        "Does OpenAI want a newsletter?", "".join(paragraphs), engine, target_language="fr",
        glossary=glossary, examples=[("The board met.", "Le conseil s'est réuni.")],
    )  # fmt: skip

    batches = [json.loads(request.messages[-1]["content"]) for request in llm.requests]
    assert len(batches) > 1  # 100 tokens a batch
    for batch in batches:
        assert batch["title"] == "Does OpenAI want a newsletter?"
        assert batch["glossary"] == {"keep": ["OpenAI"], "force": {"newsletter": "infolettre"}}
        assert batch["examples"] == [
            {"source": "The board met.", "translation": "Le conseil s'est réuni."}
        ]
    second = batches[1]
    assert second["before"] and second["before"][-1] not in [u["text"] for u in second["units"]]
    assert batches[0]["headline"] is True and "headline" not in second
    # The glossary's terms travel as placeholders and come back as the glossary says.
    assert "[[1]]" in batches[0]["units"][0]["text"] and "infolettre" in done.title
    # The proposed headline lacks the glossary's «infolettre»: the editor is not offered it.
    assert done.headline == ""
    assert done.warnings == ("the proposed headline was left out: it lacks «infolettre»",)


def test_an_adapted_headline_is_proposed_beside_the_literal_title(llm: LLMServer) -> None:
    engine = llm_engine(llm, headline="adapt")

    done = translate_article(
        "Does OpenAI want the board?", "<p>The board met the company.</p>", engine,
        target_language="fr", glossary=Glossary(keep=("OpenAI",)),
    )  # fmt: skip

    assert done.headline == typeset(HEADLINE_PREFIX + done.title.replace("\u202f?", "?"), "fr")
    assert done.title == typeset(dictionary_translate("Does OpenAI want the board?"), "fr")
    assert done.warnings == ()


def test_aggregator_poll_falls_back_to_another_engine_for_the_units_the_model_keeps_wrong(
    tmp_path: Path,
    upstream: UpstreamServer,
    libretranslate: LibreTranslateServer,
    llm: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = ghost_feed(upstream.base_url)
    upstream.add(FEED_PATH, feed)
    monkeypatch.setenv("AGGREGATOR_LLM_API_KEY", "sk-secret-test-key")
    config = tmp_path / "config.toml"
    config.write_text(
        "\n".join([
            "[database]", 'url = "sqlite:///aggregator.db"',
            "[fetch]", "allow_private_networks = true",
            "[translation]", 'engine = "llm"', 'fallback = ["libre"]', 'timeout = "5s"',
            "[translation.llm]", f'base_url = "{llm.base_url}"', 'model = "house-model"',
            "[translation.libre]", f'url = "{libretranslate.url("/")}"', 'api_key = "test"',
            "[[feeds]]", f'url = "{upstream.url(FEED_PATH)}"', 'name = "The Torment Nexus"',
        ]) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    llm.misbehave(*["lose_placeholders"] * 80)

    result = run_cli(config, "poll")

    drafts = json.loads(run_cli(config, "drafts", "list", "--json").stdout)
    assert sorted(d["title"] != "" for d in drafts) == [True, True]
    assert libretranslate.requests > 0  # the units with links, and only those
    sent_to_libre = "\n".join(libretranslate.texts)
    assert "[[1]]" in sent_to_libre
    assert all(request.authorized for request in llm.requests)
    assert "sk-secret-test-key" not in result.stdout + result.stderr
    for draft in drafts:
        shown = json.loads(run_cli(config, "drafts", "show", str(draft["id"]), "--json").stdout)
        assert detect(text_of_inner(shown["body_html"])) == "fr"
    status = run_cli(config, "status").stdout
    spent = next(line for line in status.splitlines() if line.startswith("jetons"))
    prompt_tokens = re.sub(r"\D", "", spent.split("envoyés")[0].split(":")[-1])
    assert int(prompt_tokens) == llm.prompt_tokens, status


def test_tokens_are_reserved_before_each_request_and_a_spent_budget_pauses_the_engine(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    prices = {"price_input_per_mtok": 2.0, "price_output_per_mtok": 8.0}
    desk = llm_desk(tmp_path, upstream, libretranslate, llm, **prices, daily_tokens=2600)

    desk.poll()

    day = desk.moment[0].date().isoformat()
    spend = desk.store.spend_on(day)["llm"]
    # Settled to what the service counted, every request of the day included.
    assert spend.prompt_tokens == llm.prompt_tokens
    assert spend.completion_tokens > 0 and spend.requests == len(llm.requests)
    assert spend.cost == pytest.approx(
        (spend.prompt_tokens * 2.0 + spend.completion_tokens * 8.0) / 1e6
    )
    assert spend.tokens <= 2600
    entries = desk.entries()
    paused = [
        t
        for t in ARTICLES
        if "daily budget of 2,600 tokens is spent" in (entries[t].last_error or "")
    ]
    assert paused and len(desk.drafts()) == len(ARTICLES) - len(paused)
    midnight = desk.moment[0].replace(hour=0, minute=0) + timedelta(days=1)
    assert all(entries[t].next_attempt_at >= midnight for t in paused)  # type: ignore[operator]

    desk.moment[0] = midnight + timedelta(minutes=1)
    desk.process()

    assert_complete_french_drafts(desk)


def test_the_editors_rewrites_in_a_feed_are_the_examples_its_next_articles_carry(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer, llm: LLMServer
) -> None:
    desk = llm_desk(tmp_path, upstream, libretranslate, llm)
    desk.poll()
    courts = desk.drafts()["The courts and the executive order"]
    desk.store.edit(
        courts.id, actor="camille", now=desk.moment[0], title="Les tribunaux face au décret"
    )
    feed_id = desk.entries()["The courts and the executive order"].feed_id

    examples = desk.store.feed_examples(feed_id)
    translate_article(
        "Next", "<p>The board met the company.</p>", llm_engine(llm), target_language="fr",
        examples=examples,
    )  # fmt: skip

    assert len(examples) == 1
    sent = json.loads(llm.requests[-1].messages[-1]["content"])["examples"]
    assert sent == [
        {
            "source": "The courts and the executive order",
            "translation": "Les tribunaux face au décret",
        }
    ]
