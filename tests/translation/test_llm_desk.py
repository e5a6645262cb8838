"""What an LLM translation shows the editor and the operator: its tokens and cost on the
draft's desk page and per feed in ``aggregator status``.

``aggregator poll`` translates two newsletters, the Ghost-style one on the LLM engine (the
official ``openai`` client against ``LLMServer`` on 127.0.0.1, priced) and the excerpts one on
the default LibreTranslate-compatible server; the desk is the real app under Starlette's
TestClient, logged in through its form.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import pytest
from conftest import run_cli
from llm_server import LLMServer
from newsroom import (
    EXCERPTS_FEED_PATH,
    GHOST_FEED_PATH,
    MUSK_TITLE,
    PASSWORD,
    SIMDJSON_TITLE,
    TestClient,
    log_in,
    serve_newsletters,
)
from prometheus_client.parser import text_string_to_metric_families
from servers import LibreTranslateServer, UpstreamServer, config_toml, free_port

from aggregator import config as config_module
from aggregator.config import Settings
from aggregator.i18n import messages
from aggregator.store import DraftView, Store
from aggregator.web.app import create_app

PRICE_IN, PRICE_OUT = 2.0, 8.0  # per million tokens
FRENCH = messages("fr")


@dataclass
class Room:
    config: Path
    settings: Settings
    store: Store
    llm: LLMServer

    def draft(self, title: str) -> DraftView:
        (found,) = [d for d in self.store.list_drafts() if d.original_title == title]
        return self.store.get_draft(found.id)

    def client(self) -> TestClient:
        app = create_app(self.settings, self.store)
        return TestClient(app, base_url=self.settings.server.base_url, follow_redirects=False)


@pytest.fixture
def room(
    tmp_path: Path, upstream: UpstreamServer, libretranslate: LibreTranslateServer
) -> Iterator[Room]:
    serve_newsletters(upstream)
    (tmp_path / "review-password").write_text(PASSWORD + "\n", encoding="utf-8")
    with LLMServer() as llm:
        extra = "\n".join([
            "", "[translation.llm]", f'base_url = "{llm.base_url}"', 'model = "house-model"',
            f"price_input_per_mtok = {PRICE_IN}", f"price_output_per_mtok = {PRICE_OUT}",
            'headline = "adapt"',
            "", "[review]", 'password_file = "review-password"',
        ])  # fmt: skip
        feeds = [
            {"url": upstream.url(GHOST_FEED_PATH), "name": "The Torment Nexus", "engine": "llm"},
            {"url": upstream.url(EXCERPTS_FEED_PATH), "name": "Excerpts Weekly"},
        ]
        config = tmp_path / "config.toml"
        config.write_text(
            config_toml(libretranslate.url("/"), feeds, port=free_port(), extra=extra),
            encoding="utf-8",
        )
        run_cli(config, "poll")
        settings = config_module.load(config)
        store = Store.from_settings(settings)
        try:
            yield Room(config, settings, store, llm)
        finally:
            store.close()


def cost(draft: DraftView) -> float:
    assert draft.prompt_tokens is not None and draft.completion_tokens is not None
    return (draft.prompt_tokens * PRICE_IN + draft.completion_tokens * PRICE_OUT) / 1e6


def test_each_draft_keeps_the_tokens_its_translation_cost(room: Room) -> None:
    on_llm = [d for d in room.store.list_drafts() if d.feed == "The Torment Nexus"]
    on_libre = [d for d in room.store.list_drafts() if d.feed == "Excerpts Weekly"]
    assert len(on_llm) == 2 and len(on_libre) == 2
    # Between them the drafts were sent what the service counted, every request included.
    assert sum(d.prompt_tokens or 0 for d in on_llm) == room.llm.prompt_tokens
    spent = room.store.spend_on(datetime.now(UTC).date().isoformat())["llm"]
    assert sum(d.completion_tokens or 0 for d in on_llm) == spent.completion_tokens
    for draft in on_llm:
        assert draft.cost == pytest.approx(cost(draft)) and draft.cost > 0
    for draft in on_libre:
        assert (draft.prompt_tokens, draft.completion_tokens, draft.cost) == (None, None, None)


def test_the_draft_page_shows_the_tokens_and_the_cost_of_its_translation(room: Room) -> None:
    musk = room.draft(MUSK_TITLE)
    simdjson = room.draft(SIMDJSON_TITLE)
    with room.client() as client:
        log_in(client)
        page = lxml.html.fromstring(client.get(f"/review/drafts/{musk.id}").text)
        other = lxml.html.fromstring(client.get(f"/review/drafts/{simdjson.id}").text)

    (tokens,) = page.find_class("tokens")
    label = tokens.getprevious()
    assert label is not None and label.text_content() == "Jetons"
    assert musk.prompt_tokens and musk.completion_tokens
    assert tokens.text_content() == (
        f"{FRENCH.number(musk.prompt_tokens)} envoyés, "
        f"{FRENCH.number(musk.completion_tokens)} reçus · coût {FRENCH.amount(cost(musk))}"
    )
    # A draft no LLM took part in has no such line.
    assert other.find_class("tokens") == []


def test_status_prints_what_each_feed_spent_on_the_llm_today(room: Room) -> None:
    status = run_cli(room.config, "status").stdout

    on_llm = [d for d in room.store.list_drafts() if d.feed == "The Torment Nexus"]
    sent = sum(d.prompt_tokens or 0 for d in on_llm)
    received = sum(d.completion_tokens or 0 for d in on_llm)
    assert sent == room.llm.prompt_tokens
    spend_lines = [line for line in status.splitlines() if "brouillons du jour" in line]
    assert spend_lines == [
        f"  The Torment Nexus : {FRENCH.number(sent)} envoyés, {FRENCH.number(received)} reçus "
        "pour ses brouillons du jour (UTC), coût " + FRENCH.amount(sum(cost(d) for d in on_llm))
    ], status


def headline_form(html: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the form that takes the adapted headline as the title."""
    (form,) = lxml.html.fromstring(html).find_class("headline-form")
    fields = {i.get("name"): i.get("value") or "" for i in form.iter("input") if i.get("name")}
    return form.get("action") or "", fields


def test_the_adapted_headline_is_shown_beside_the_literal_title_and_the_editor_takes_it(
    room: Room,
) -> None:
    musk = room.draft(MUSK_TITLE)
    assert musk.headline and musk.headline.startswith("À la une")  # llm_server.HEADLINE_PREFIX
    with room.client() as client:
        log_in(client)
        html = client.get(f"/review/drafts/{musk.id}").text
        page = lxml.html.fromstring(html)
        (shown,) = page.find_class("adapted-headline")
        assert shown.text_content() == musk.headline
        assert page.get_element_by_id("title").get("value") == musk.title != musk.headline
        assert "Prendre ce titre" in html
        action, fields = headline_form(html)
        # Without the session's CSRF token, nothing changes.
        forged = client.post(action, data={**fields, "csrf": "forged"})
        assert forged.status_code == 403
        assert room.draft(MUSK_TITLE).title == musk.title

        taken = client.post(action, data=fields)

        assert taken.status_code == 303, taken.text
        after = lxml.html.fromstring(client.get(taken.headers["location"]).text)
    assert after.get_element_by_id("title").get("value") == musk.headline
    assert after.find_class("adapted-headline") == []  # it is the title now
    draft = room.draft(MUSK_TITLE)
    assert draft.title == musk.headline and draft.edited == ("title",)
    assert draft.version == musk.version + 1
    events = room.store.get_draft_detail(draft.id).events
    assert (events[-1].actor, events[-1].action) == ("Camille", "edited")
    # The literal title stays what the other engines' drafts have: no proposal there.
    with room.client() as client:
        log_in(client)
        other = client.get(f"/review/drafts/{room.draft(SIMDJSON_TITLE).id}").text
    assert lxml.html.fromstring(other).find_class("headline-form") == []


def test_metrics_export_what_each_feed_spent_on_the_llm_today(room: Room) -> None:
    on_llm = [d for d in room.store.list_drafts() if d.feed == "The Torment Nexus"]
    slug = on_llm[0].feed_slug
    with room.client() as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    samples = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    tokens = sum((d.prompt_tokens or 0) + (d.completion_tokens or 0) for d in on_llm)
    assert samples[("aggregator_llm_feed_tokens_today", (("feed", slug),))] == tokens
    assert samples[("aggregator_llm_feed_cost_today", (("feed", slug),))] == pytest.approx(
        sum(cost(d) for d in on_llm)
    )
    # The excerpts newsletter is on LibreTranslate: it spent no tokens.
    feeds = {labels for name, labels in samples if name == "aggregator_llm_feed_tokens_today"}
    assert feeds == {(("feed", slug),)}
