"""The local OpenAI-compatible server, checked with the official ``openai`` client."""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from llm_server import CHATTER, HEADLINE_PREFIX, LLMServer, tokens

from aggregator.extraction.language import detect

INSTRUCTIONS = "Translate every unit from English to French. Answer with JSON only."
UNITS = [
    {"id": "u1", "text": "The company said that [[1]]the board[[/1]] will publish the data."},
    {
        "id": "u4",
        "text": "Our team explained [[1]]why[[/1]] the price [[2]] was high.",
    },
    {"id": "u7", "text": "Thanks for reading, and please share it with someone who might like it."},
]


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def client_for(server: LLMServer, timeout: float = 10) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url, api_key="sk-test-secret", max_retries=0, timeout=timeout
    )


def work(units: list[dict[str, str]] = UNITS, **extra: Any) -> list[Any]:
    payload = {"source_language": "en", "target_language": "fr", "title": "A title"}
    payload |= extra | {"units": units}
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": json.dumps(payload)},
    ]


def ask(server: LLMServer, messages: list[Any] | None = None, **options: Any) -> Any:
    return client_for(server).chat.completions.create(
        model="mistral-small", messages=messages or work(), **options
    )


def answered_units(completion: Any) -> list[dict[str, str]]:
    units: list[dict[str, str]] = json.loads(completion.choices[0].message.content)["units"]
    return units


def placeholders(text: str) -> list[str]:
    return [piece for piece in ("[[1]]", "[[/1]]", "[[2]]") if piece in text]


def test_units_come_back_in_french_with_their_ids_and_placeholders(server: LLMServer) -> None:
    completion = ask(server)
    units = answered_units(completion)
    assert [unit["id"] for unit in units] == ["u1", "u4", "u7"]
    for sent, received in zip(UNITS, units, strict=True):
        assert placeholders(received["text"]) == placeholders(sent["text"])
        assert detect(received["text"]) == "fr", received["text"]
    assert units[0]["text"].startswith("Le entreprise a dit que [[1]]le conseil[[/1]]")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "mistral-small"
    assert completion.object == "chat.completion"
    assert completion.id == "chatcmpl-1"


def test_usage_counts_a_quarter_token_per_character_rounded_up(server: LLMServer) -> None:
    messages = work()
    completion = ask(server, messages)
    expected_prompt = sum(math.ceil(len(m["content"]) / 4) for m in messages)
    expected_completion = math.ceil(len(completion.choices[0].message.content) / 4)
    assert completion.usage.prompt_tokens == expected_prompt == server.prompt_tokens
    assert completion.usage.completion_tokens == expected_completion
    assert completion.usage.total_tokens == expected_prompt + expected_completion
    assert tokens("abcde") == 2


def test_models_lists_the_served_model(server: LLMServer) -> None:
    assert [model.id for model in client_for(server).models.list()] == ["fake-translator"]


def test_streaming_is_refused(server: LLMServer) -> None:
    with pytest.raises(openai.BadRequestError, match="does not stream"):
        ask(server, stream=True)


def test_requests_are_recorded_without_the_api_key(server: LLMServer) -> None:
    ask(server, temperature=0.2, response_format={"type": "json_object"})
    (request,) = server.requests
    assert request.model == "mistral-small"
    assert request.body["temperature"] == 0.2
    assert request.units == UNITS
    assert request.authorized
    assert "authorization" not in request.headers
    assert "sk-test-secret" not in repr(request)
    # The openai client always sends a key; Ollama and llama.cpp are reached without one.
    body = json.dumps({"model": "m", "messages": work()}).encode()
    headers = {"Content-Type": "application/json"}
    url = server.base_url + "/chat/completions"
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10):
        pass
    assert not server.requests[1].authorized


def test_a_message_without_units_is_translated_as_plain_text(server: LLMServer) -> None:
    messages = [{"role": "user", "content": "The company said that the board will publish it."}]
    completion = ask(server, messages)
    assert completion.choices[0].message.content.startswith("Le entreprise a dit que le conseil")


def test_a_headline_is_proposed_only_when_asked(server: LLMServer) -> None:
    title = "The company will publish the data"
    asked = json.loads(ask(server, work(title=title, headline=True)).choices[0].message.content)
    assert asked["headline"] == HEADLINE_PREFIX + "Le entreprise va publier le données"
    assert "headline" not in json.loads(ask(server, work(title=title)).choices[0].message.content)


def test_an_answer_longer_than_max_tokens_is_cut(server: LLMServer) -> None:
    completion = ask(server, max_tokens=10)
    assert completion.choices[0].finish_reason == "length"
    assert len(completion.choices[0].message.content) == 40


def test_misbehaviours_are_consumed_one_per_request_in_order(server: LLMServer) -> None:
    server.misbehave("drop_id", "chatter")
    assert len(answered_units(ask(server))) == 2
    assert ask(server).choices[0].message.content.startswith(CHATTER)
    assert len(answered_units(ask(server))) == 3
    assert [r.misbehaviour for r in server.requests] == ["drop_id", "chatter", None]
    with pytest.raises(ValueError, match="unknown misbehaviour"):
        server.misbehave("sulk")  # type: ignore[arg-type]


def test_drop_id_leaves_the_last_unit_out(server: LLMServer) -> None:
    server.misbehave("drop_id")
    assert [unit["id"] for unit in answered_units(ask(server))] == ["u1", "u4"]


def test_merge_units_answers_two_units_as_one(server: LLMServer) -> None:
    server.misbehave("merge_units")
    first, last = answered_units(ask(server))
    assert (first["id"], last["id"]) == ("u1", "u7")
    assert "[[2]]" in first["text"] and first["text"].startswith("Le entreprise")


def test_chatter_puts_a_sentence_before_the_json(server: LLMServer) -> None:
    server.misbehave("chatter")
    content = ask(server).choices[0].message.content
    assert content.startswith("Voici la traduction :")
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    assert len(json.loads(content.removeprefix(CHATTER))["units"]) == 3


def test_english_answers_the_source_text(server: LLMServer) -> None:
    server.misbehave("english")
    assert answered_units(ask(server)) == UNITS


def test_truncate_cuts_the_answer_with_finish_reason_length(server: LLMServer) -> None:
    complete = ask(server).choices[0].message.content
    server.misbehave("truncate")
    cut = ask(server).choices[0]
    assert cut.finish_reason == "length"
    assert complete.startswith(cut.message.content)
    assert len(cut.message.content) < len(complete)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.message.content)


def test_lose_placeholders_keeps_the_words_only(server: LLMServer) -> None:
    server.misbehave("lose_placeholders")
    units = answered_units(ask(server))
    assert all("[[" not in unit["text"] for unit in units)
    assert units[0]["text"].startswith("Le entreprise a dit que le conseil")


def test_rate_limit_answers_429_with_reset_headers(server: LLMServer) -> None:
    server.retry_after = 7
    server.misbehave("rate_limit")
    with pytest.raises(openai.RateLimitError) as raised:
        ask(server)
    headers = raised.value.response.headers
    assert raised.value.status_code == 429
    assert headers["retry-after"] == "7"
    assert headers["x-ratelimit-reset-requests"] == "7s"
    assert headers["x-ratelimit-reset-tokens"] == "7s"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert len(answered_units(ask(server))) == 3


def test_hang_outlasts_the_client_deadline_and_later_requests_answer(server: LLMServer) -> None:
    server.misbehave("hang")
    with pytest.raises(openai.APITimeoutError):
        client_for(server, timeout=0.5).chat.completions.create(model="m", messages=work())
    assert len(answered_units(ask(server))) == 3


def test_invalid_json_is_not_json(server: LLMServer) -> None:
    server.misbehave("invalid_json")
    choice = ask(server).choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content.startswith('{"units": [{"id": "u1"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.message.content)
