"""Engines at their boundary: deadlines, Retry-After, None and empty answers, DeepL's own
client, circuit breakers, daily budgets and the fallback chain.

LibreTranslate is the local API server, called directly (key and text in the body); DeepL
is a local server speaking DeepL's API v2 to DeepL's official client; engines that cannot
be reached here
(Google, Microsoft, MyMemory) are exercised through their deep-translator factory.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from servers import LibreTranslateServer, LocalServer, _QuietHandler, dictionary_translate

from aggregator import config as config_module
from aggregator.config import Duration, EngineSettings, TranslationSettings
from aggregator.errors import BudgetExhaustedError, ConfigError, TranslateError
from aggregator.store import Store
from aggregator.translation.chain import CircuitBreaker, EngineChain, GuardedEngine
from aggregator.translation.engines import (
    DEFAULT_RETRY_AFTER,
    DeepTranslatorEngine,
    build_engine,
    build_engines,
    parse_retry_after,
)
from aggregator.translation.translate import translate_article


def libre_settings(server: LibreTranslateServer, **extra: Any) -> TranslationSettings:
    return TranslationSettings(
        engine="libre",
        libre=EngineSettings(url=server.url("/"), api_key="test"),
        **extra,
    )


class _DeepLHandler(_QuietHandler):
    api: ClassVar[DeepLServer]

    def do_POST(self) -> None:
        body = json.loads(self.read_body() or b"{}")
        self.api.received.append((dict(self.headers.items()), self.path, body))
        if self.api.status != 200:
            self.send_json(self.api.status, {"message": "Too many requests"})
            return
        texts = body.get("text", [])
        self.send_json(
            200,
            {
                "translations": [
                    {
                        "detected_source_language": "EN",
                        "text": dictionary_translate(text),
                        "billed_characters": len(text),
                    }
                    for text in texts
                ]
            },
        )


class DeepLServer(LocalServer):
    """DeepL API v2 ``POST /v2/translate`` (JSON), translating with the test dictionary."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], str, dict[str, Any]]] = []
        self.status = 200
        super().__init__(type("DeepLHandler", (_DeepLHandler,), {"api": self}))


@pytest.fixture
def deepl_api() -> Any:
    with DeepLServer() as server:
        yield server


# -------------------------------------------------------------------------------------------
# deep-translator adapter: None, empty, errors, deadline


def test_none_from_deep_translator_is_a_failure_never_content(
    libretranslate: LibreTranslateServer,
) -> None:
    libretranslate.mode = "null"  # {"translatedText": null}: deep-translator returns None
    engine = build_engine(libre_settings(libretranslate))

    with pytest.raises(TranslateError, match="libre: the engine returned no text"):
        engine.translate("The company.")


def test_libre_sends_its_key_and_the_text_in_the_body_never_in_the_url() -> None:
    """Query strings land in the access logs of the server and of every proxy."""
    with LibreTranslateServer(require_api_key=True) as server:
        engine = build_engine(libre_settings(server))
        assert engine.translate("The company.\nThe team.") == dictionary_translate(
            "The company.\nThe team."
        )
        assert server.texts == ["The company.\nThe team."]
        assert server.query_fields == [] and server.leaked_in_query() == []

        keyless = build_engine(
            TranslationSettings(engine="libre", libre=EngineSettings(url=server.url("/")))
        )
        with pytest.raises(TranslateError, match="HTTP 403: it refused the API key"):
            keyless.translate("The company.")


def test_the_test_server_sees_a_key_sent_in_the_query_string() -> None:
    """The check above can fail: deep-translator's own LibreTranslator leaks both."""
    from deep_translator import LibreTranslator

    with LibreTranslateServer() as server:
        LibreTranslator(
            source="en", target="fr", api_key="secret", custom_url=server.url("/")
        ).translate("The company.")
        assert sorted(server.leaked_in_query()) == ["api_key", "q"]


@pytest.mark.parametrize("answer", [None, "", "   \n  ", 42])
def test_any_engine_object_answering_nothing_is_a_failure(answer: object) -> None:
    class Translator:
        def translate(self, text: str) -> object:
            return answer

    engine = DeepTranslatorEngine(name="google", max_chars=4999, timeout=5, factory=Translator)

    with pytest.raises(TranslateError, match="google: the engine returned no text"):
        engine.translate("The company.")


def test_empty_answer_from_the_server_is_a_failure(libretranslate: LibreTranslateServer) -> None:
    libretranslate.mode = "empty"

    with pytest.raises(TranslateError, match="no text"):
        build_engine(libre_settings(libretranslate)).translate("The company.")


def test_a_server_that_never_answers_meets_the_deadline(
    libretranslate: LibreTranslateServer,
) -> None:
    libretranslate.hang = True
    engine = build_engine(libre_settings(libretranslate, timeout=Duration(1)))

    # The client's own timeout and the call's deadline are both 1 s: either may say so.
    with pytest.raises(
        TranslateError, match=r"libre: (no answer within|the request timed out after) 1 s"
    ):
        engine.translate("The company.")
    assert libretranslate.requests == 1


def test_too_many_requests_carries_the_services_retry_after(
    libretranslate: LibreTranslateServer,
) -> None:
    engine = build_engine(libre_settings(libretranslate))
    libretranslate.fail_next(1, status=429, retry_after=120)

    with pytest.raises(TranslateError, match="429") as caught:
        engine.translate("The company.")
    assert caught.value.retry_after == 120

    later = datetime.now(UTC) + timedelta(minutes=5)
    libretranslate.fail_next(1, status=503, retry_after=format_datetime(later, usegmt=True))
    with pytest.raises(TranslateError, match="HTTP 503") as caught:
        engine.translate("The company.")
    assert caught.value.retry_after is not None and 280 < caught.value.retry_after <= 300


def test_server_error_and_refused_connection_are_named(
    libretranslate: LibreTranslateServer,
) -> None:
    engine = build_engine(libre_settings(libretranslate))
    libretranslate.fail_next(1, status=500)
    with pytest.raises(TranslateError, match="libre: the service answered HTTP 500") as caught:
        engine.translate("The company.")
    assert caught.value.retry_after is None

    closed = build_engine(
        TranslationSettings(engine="libre", libre=EngineSettings(url="http://127.0.0.1:9/"))
    )
    with pytest.raises(TranslateError, match="cannot connect"):
        closed.translate("The company.")


def test_retry_after_parsing() -> None:
    now = datetime(2025, 2, 12, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Wed, 12 Feb 2025 12:02:00 GMT", now) == 120
    assert parse_retry_after("Wed, 12 Feb 2025 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_requests_stays_requests_own_for_the_rest_of_the_process(
    libretranslate: LibreTranslateServer,
) -> None:
    """Engines are built and called; a plain requests.get elsewhere goes through requests'
    own Session.request, with no engine's deadline or bookkeeping in between."""
    import requests

    settings = TranslationSettings(
        engine="google",
        fallback=("mymemory", "libre"),
        libre=EngineSettings(url=libretranslate.url("/"), api_key="test"),
    )
    for engine in build_engines(settings):
        if isinstance(engine, DeepTranslatorEngine):
            engine.factory()  # deep-translator's translator, as each call builds it
        else:
            assert engine.translate("The company.") == dictionary_translate("The company.")

    assert (requests.Session.request.__module__, requests.Session.request.__qualname__) == (
        "requests.sessions",
        "Session.request",
    )
    answer = requests.get(libretranslate.url("/languages"))
    assert answer.status_code == 200 and answer.json()


def test_too_many_requests_from_deep_translator_waits_the_default() -> None:
    from deep_translator.exceptions import TooManyRequests

    class Translator:
        def translate(self, text: str) -> str:
            raise TooManyRequests()

    engine = DeepTranslatorEngine(name="google", max_chars=4999, timeout=5, factory=Translator)

    with pytest.raises(TranslateError, match=r"google: too many requests \(HTTP 429\)") as caught:
        engine.translate("The company.")
    assert caught.value.retry_after == DEFAULT_RETRY_AFTER


# -------------------------------------------------------------------------------------------
# Engines by name


def test_every_engine_is_built_with_its_documented_limits() -> None:
    settings = TranslationSettings(
        engine="google",
        libre=EngineSettings(url="http://127.0.0.1:5000"),
        deepl=EngineSettings(api_key="key:fx"),
        microsoft=EngineSettings(api_key="key", region="westeurope"),
    )
    limits = {
        name: (e.max_chars, e.max_url_bytes)
        for name in ("google", "libre", "deepl", "microsoft", "mymemory")
        for e in [build_engine(settings, name)]
    }
    assert limits == {
        "google": (4999, 12000),
        "libre": (4999, 7500),
        "deepl": (30000, 0),
        "microsoft": (9999, 0),
        "mymemory": (499, 7500),
    }
    configured = TranslationSettings(engine="google", google=EngineSettings(max_chars=1800))
    assert build_engine(configured).max_chars == 1800


def test_fallback_chain_is_validated_in_config(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    base = {"translation": {"engine": "google", "fallback": ["libre"]}}
    with pytest.raises(ConfigError, match=r"translation.libre.url' for 'translation.fallback\[0\]"):
        config_module.from_dict(base, file)
    with pytest.raises(ConfigError, match="already in the chain"):
        config_module.from_dict({"translation": {"fallback": ["google"]}}, file)
    with pytest.raises(ConfigError, match="must be one of"):
        config_module.from_dict({"translation": {"fallback": ["babel"]}}, file)
    settings = config_module.from_dict(
        {
            "translation": {
                "engine": "google",
                "fallback": ["mymemory", "libre"],
                "libre": {"url": "http://127.0.0.1:5000/", "daily_characters": 50000},
                "glossary": {"keep": ["OpenAI"], "force": {"newsletter": "infolettre"}},
            }
        },
        file,
    )
    assert [e.name for e in build_engines(settings.translation)] == ["google", "mymemory", "libre"]
    assert settings.translation.libre.daily_characters == 50000
    assert settings.translation.glossary.force == {"newsletter": "infolettre"}


def test_deepl_goes_through_its_official_client_with_header_auth(deepl_api: DeepLServer) -> None:
    settings = TranslationSettings(
        engine="deepl", deepl=EngineSettings(api_key="secret-key:fx", url=deepl_api.url("/"))
    )
    engine = build_engine(settings)

    translated = engine.translate("The company.\nThe [[1]]board[[/1]] met.")

    assert translated == "Le entreprise.\nLe [[1]]conseil[[/1]] met."
    headers, path, body = deepl_api.received[0]
    assert path == "/v2/translate"
    assert headers.get("Authorization") == "DeepL-Auth-Key secret-key:fx"
    assert "secret-key" not in path  # never in the query string
    assert body["text"] == ["The company.", "The [[1]]board[[/1]] met."]
    assert (body["source_lang"], body["target_lang"]) == ("EN", "FR")


def test_deepl_rate_limit_is_not_retried_past_the_deadline(deepl_api: DeepLServer) -> None:
    deepl_api.status = 429
    settings = TranslationSettings(
        engine="deepl",
        timeout=Duration(20),
        deepl=EngineSettings(api_key="k", url=deepl_api.url("/")),
    )

    with pytest.raises(TranslateError, match="too many requests") as caught:
        build_engine(settings).translate("The company.")
    assert caught.value.retry_after == 60
    assert len(deepl_api.received) == 1  # the client's own backoff is off


# -------------------------------------------------------------------------------------------
# Circuit breaker, budget, fallback


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Flaky:
    """An engine object that fails its first ``failures`` calls."""

    name: str = "flaky"
    failures: int = 0
    max_chars: int = 4999
    max_url_bytes: int = 0
    calls: list[str] = field(default_factory=list)
    retry_after: float | None = None

    def translate(self, text: str) -> str:
        self.calls.append(text)
        if len(self.calls) <= self.failures:
            raise TranslateError(
                f"{self.name}: the service answered HTTP 500", retry_after=self.retry_after
            )
        return dictionary_translate(text)


def test_breaker_opens_after_repeated_failures_then_lets_a_trial_through() -> None:
    clock = Clock()
    flaky = Flaky(failures=4)
    guarded = GuardedEngine(flaky, CircuitBreaker("flaky", threshold=3, cooldown=60, clock=clock))

    for _ in range(3):
        with pytest.raises(TranslateError, match="HTTP 500"):
            guarded.translate("The company.")
    with pytest.raises(TranslateError, match="paused for 60 s") as caught:
        guarded.translate("The company.")
    assert caught.value.retry_after == 60
    assert len(flaky.calls) == 3  # the open breaker sent nothing

    clock.now += 61
    with pytest.raises(TranslateError, match="HTTP 500"):
        guarded.translate("The company.")  # the trial fails: open again, twice as long
    with pytest.raises(TranslateError, match="paused for 120 s"):
        guarded.translate("The company.")
    clock.now += 121
    assert guarded.translate("The company.") == "Le entreprise."
    assert guarded.breaker.failures == 0


def test_retry_after_opens_the_breaker_for_exactly_that_long() -> None:
    clock = Clock()
    flaky = Flaky(failures=1, retry_after=30)
    guarded = GuardedEngine(flaky, CircuitBreaker("flaky", clock=clock))

    with pytest.raises(TranslateError):
        guarded.translate("The company.")
    with pytest.raises(TranslateError, match="paused for 30 s"):
        guarded.translate("The company.")
    clock.now += 30.5
    assert guarded.translate("The company.") == "Le entreprise."


def test_daily_budget_refuses_before_sending_and_resumes_the_next_day(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/budget.db")
    store.upgrade()
    moment = [datetime(2025, 2, 12, 22, 0, tzinfo=UTC)]
    flaky = Flaky()
    guarded = GuardedEngine(
        flaky,
        CircuitBreaker("flaky"),
        ledger=store,
        daily_characters=30,
        now=lambda: moment[0],
    )

    assert guarded.translate("The company is big.") == "Le entreprise est grand."  # 19 chars
    with pytest.raises(BudgetExhaustedError, match="daily budget of 30 characters") as caught:
        guarded.translate("The board is big.")  # 17 more would make 36
    assert caught.value.retry_after == 2 * 3600  # until 00:00 UTC
    assert len(flaky.calls) == 1
    assert store.usage("2025-02-12")["flaky"].characters == 19

    moment[0] += timedelta(hours=3)
    assert guarded.translate("The board is big.") == "Le conseil est grand."
    assert store.usage("2025-02-13")["flaky"].characters == 17


def test_article_continues_on_the_fallback_when_the_first_engine_fails(
    libretranslate: LibreTranslateServer, deepl_api: DeepLServer
) -> None:
    deepl_api.status = 503
    settings = TranslationSettings(
        engine="deepl",
        fallback=("libre",),
        deepl=EngineSettings(api_key="k", url=deepl_api.url("/")),
        libre=EngineSettings(url=libretranslate.url("/"), api_key="test"),
    )
    chain = EngineChain([GuardedEngine(e, CircuitBreaker(e.name)) for e in build_engines(settings)])

    translation = translate_article("The board", "<p>The company.</p>", chain, target_language="fr")

    assert translation.engine == "libre"
    assert translation.body_html == "<p>Le entreprise.</p>"
    assert len(deepl_api.received) == 1 and libretranslate.requests == 1


def test_when_every_engine_fails_the_error_names_them_all(
    libretranslate: LibreTranslateServer, deepl_api: DeepLServer
) -> None:
    deepl_api.status = 429
    libretranslate.fail_next(1, status=500)
    settings = TranslationSettings(
        engine="deepl",
        fallback=("libre",),
        deepl=EngineSettings(api_key="k", url=deepl_api.url("/")),
        libre=EngineSettings(url=libretranslate.url("/"), api_key="test"),
    )
    chain = EngineChain([GuardedEngine(e, CircuitBreaker(e.name)) for e in build_engines(settings)])

    with pytest.raises(TranslateError) as caught:
        translate_article("The board", "<p>The company.</p>", chain, target_language="fr")
    assert "deepl: too many requests" in str(caught.value)
    assert "libre: the service answered HTTP 500" in str(caught.value)
    assert caught.value.retry_after is None  # libre's 500 gave no time: backoff decides


def test_engines_are_safe_to_call_from_many_threads(libretranslate: LibreTranslateServer) -> None:
    engine = build_engine(libre_settings(libretranslate))
    results: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        text = engine.translate(f"The company number {n}.")
        with lock:
            results.append(text)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(f"Le entreprise nombre {n}." for n in range(8))
