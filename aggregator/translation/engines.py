"""Translation engines behind one small interface, each call under a hard deadline.

deep-translator has no timeout, returns ``None`` on some inputs, hides the response (so
Retry-After is lost) and is not thread-safe per instance. So every call builds a fresh
translator and runs in its own thread with a deadline, and any failure, including empty or
``None`` output, becomes a ``TranslateError``. deep-translator takes no session, so nothing is
changed in ``requests`` for it: a call past its deadline is abandoned (its daemon thread ends
when its connection does), and a 429 from it waits DEFAULT_RETRY_AFTER.

DeepL goes through DeepL's own client: deep-translator still authenticates with the query
string DeepL retired, and sends one text per request. LibreTranslate is called directly
(``LibreEngine``): deep-translator sends its API key and the article's text as query
parameters, which land in the access logs of the server and of every proxy on the way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from aggregator.config import TranslationSettings
from aggregator.errors import ConfigError, TranslateError
from aggregator.polling.fetch import parse_retry_after

# Characters per request, from each engine's documentation: deep-translator refuses 5,000
# for Google; LibreTranslate's default char_limit is 5,000; DeepL takes 128 KiB per request
# (we stay well below); Microsoft 10,000 per request; MyMemory's free tier 500.
DEFAULT_MAX_CHARS = {
    "google": 4999,
    "libre": 4999,
    "deepl": 30000,
    "microsoft": 9999,
    "mymemory": 499,
}
# Engines that deep-translator calls with the text in the URL: there the URL overflows
# before the characters do (Google answers 400 from about 16 KB of URL, deep-translator#224;
# a LibreTranslate behind nginx answers 414 beyond its 8 KB header buffers). LibreTranslate
# now gets its text in the body, but keeps the request sizes it had with the text in the
# URL: batching, and what a request costs, stay as they were.
DEFAULT_MAX_URL_BYTES = {"google": 12000, "libre": 7500, "mymemory": 7500}
DEFAULT_RETRY_AFTER = 60.0  # a 429 that does not say when to come back


@dataclass
class _CallRecord:
    """What one engine call was given, for the adapter to word its errors."""

    timeout: float


class Engine(Protocol):
    name: str
    max_chars: int
    max_url_bytes: int  # 0: the text does not travel in the URL

    def translate(self, text: str) -> str:
        """Translate plain text, line for line; raise TranslateError on any failure."""


def call_with_deadline(name: str, timeout: float, work: Callable[[], Any]) -> tuple[Any, Any]:
    """Run ``work`` in its own thread; (result, the call's record), or TranslateError.

    The thread is a daemon: if the deadline passes, the call is abandoned; clients with
    timeouts of their own (httpx, DeepL's) end it soon after.
    """
    outcome: dict[str, Any] = {}
    record = _CallRecord(timeout=timeout)

    def call() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=call, name=f"translate-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TranslateError(f"{name}: no answer within {timeout:g} s")
    if "error" in outcome:
        raise _as_translate_error(name, outcome["error"], record)
    return outcome.get("result"), record


@dataclass
class DeepTranslatorEngine:
    """One deep-translator engine; a fresh translator object per call."""

    name: str
    max_chars: int
    timeout: float
    factory: Callable[[], Any]
    max_url_bytes: int = 0

    def translate(self, text: str) -> str:
        translated, _record = call_with_deadline(
            self.name, self.timeout, lambda: self.factory().translate(text)
        )
        if not isinstance(translated, str) or not translated.strip():
            raise TranslateError(f"{self.name}: the engine returned no text")
        return translated


@dataclass
class DeeplEngine:
    """DeepL through its official client: every line a separate text of one request."""

    api_key: str
    source: str
    target: str
    timeout: float
    max_chars: int = DEFAULT_MAX_CHARS["deepl"]
    server_url: str | None = None
    name: str = "deepl"
    max_url_bytes: int = 0
    _translator: Any = field(default=None, repr=False)

    def _client(self) -> Any:
        import deepl

        # Our own retry policy (fallback, circuit breaker, entry backoff) applies; the
        # client's backoff would sleep past the deadline.
        deepl.http_client.max_network_retries = 0
        return deepl.Translator(
            self.api_key, server_url=self.server_url or None, send_platform_info=False
        )

    def translate(self, text: str) -> str:
        lines = text.split("\n")

        def work() -> Any:
            return self._client().translate_text(
                lines,
                source_lang=None if self.source == "auto" else self.source.upper(),
                target_lang=_deepl_target(self.target),
                preserve_formatting=True,
            )

        results, _record = call_with_deadline(self.name, self.timeout, work)
        texts = [getattr(r, "text", None) for r in (results or [])]
        if len(texts) != len(lines) or any(t is None for t in texts):
            raise TranslateError(f"{self.name}: the engine returned no text")
        joined = "\n".join(str(t) for t in texts)
        if not joined.strip():
            raise TranslateError(f"{self.name}: the engine returned no text")
        return joined


@dataclass
class LibreEngine:
    """LibreTranslate's ``POST /translate`` with a JSON body: text and key never in a URL.

    One pooled client per engine (httpx's client is thread-safe); each call still runs
    under ``call_with_deadline``, and every failure is a TranslateError.
    """

    url: str  # the server's base URL, ending with "/"
    api_key: str
    source: str
    target: str
    timeout: float
    max_chars: int = DEFAULT_MAX_CHARS["libre"]
    name: str = "libre"
    max_url_bytes: int = DEFAULT_MAX_URL_BYTES["libre"]
    _client: httpx.Client | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout))
            return self._client

    def translate(self, text: str) -> str:
        payload = {"q": text, "source": self.source, "target": self.target, "format": "text"}
        if self.api_key:
            payload["api_key"] = self.api_key
        response, _record = call_with_deadline(self.name, self.timeout, lambda: self._post(payload))
        translated = response.get("translatedText") if isinstance(response, dict) else None
        if not isinstance(translated, str) or not translated.strip():
            raise TranslateError(f"{self.name}: the engine returned no text")
        return translated

    def _post(self, payload: dict[str, str]) -> Any:
        try:
            response = self._http().post(f"{self.url}translate", json=payload)
        except httpx.TimeoutException:
            raise TranslateError(
                f"{self.name}: the request timed out after {self.timeout:g} s"
            ) from None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise TranslateError(
                f"{self.name}: cannot connect to the translation service ({exc})"
            ) from None
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            raise TranslateError(
                f"{self.name}: too many requests (HTTP 429)"
                + (f"; the service asks to wait {retry_after:g} s" if retry_after else ""),
                retry_after=retry_after if retry_after is not None else DEFAULT_RETRY_AFTER,
            )
        if status == 403:
            raise TranslateError(
                f"{self.name}: the service answered HTTP 403: it refused the API key"
                " (translation.libre.api_key)"
            )
        if status >= 400:
            raise TranslateError(
                f"{self.name}: the service answered HTTP {status}", retry_after=retry_after
            )
        try:
            return response.json()
        except ValueError:
            raise TranslateError(f"{self.name}: the service's answer is not JSON") from None


def _deepl_target(language: str) -> str:
    # DeepL wants a variant for these two targets.
    return {"en": "EN-US", "pt": "PT-PT"}.get(language, language.upper())


def _as_translate_error(engine: str, exc: BaseException, record: _CallRecord) -> TranslateError:
    if isinstance(exc, TranslateError):
        return exc
    import requests  # loaded already by the client that raised; not by polling alone

    if isinstance(exc, requests.Timeout):
        return TranslateError(f"{engine}: the request timed out after {record.timeout:g} s")
    if isinstance(exc, requests.ConnectionError):
        return TranslateError(f"{engine}: cannot connect to the translation service")
    message = str(exc).strip() or type(exc).__name__
    # Neither deep-translator nor DeepL's client keeps the response: its status, when
    # known, is on the exception, and its Retry-After is lost.
    status = getattr(exc, "http_status_code", None) or getattr(exc, "status_code", None)
    kind = type(exc).__name__
    if status == 429 or kind in ("TooManyRequests", "TooManyRequestsException"):
        return TranslateError(
            f"{engine}: too many requests (HTTP 429)", retry_after=DEFAULT_RETRY_AFTER
        )
    if kind == "QuotaExceededException" or status == 456:
        return TranslateError(f"{engine}: the account's quota is spent", retry_after=6 * 3600.0)
    if status is not None and status >= 400:
        return TranslateError(f"{engine}: the service answered HTTP {status}")
    return TranslateError(f"{engine}: {message}")


def build_engine(settings: TranslationSettings, name: str | None = None) -> Engine:
    """The engine named (default: [translation] engine), configured from its own table."""
    name = name or settings.engine
    if settings.is_llm(name):
        from aggregator.translation.llm import build_llm_engine  # llm.py imports this module

        return build_llm_engine(settings, name)
    own = settings.engine_settings(name)
    timeout = float(own.timeout or settings.timeout)
    max_chars = own.max_chars or DEFAULT_MAX_CHARS[name]
    max_url_bytes = DEFAULT_MAX_URL_BYTES.get(name, 0)
    # With several source languages the engine recognises each article's own.
    languages = settings.source_languages or ("en",)
    source = languages[0] if len(languages) == 1 else "auto"
    target = settings.target_language
    factory: Callable[[], Any]
    # deep-translator (with requests and BeautifulSoup) loads at the first translation, not
    # when a poll builds the engines it may never call.
    if name == "google":

        def factory() -> Any:
            from deep_translator import GoogleTranslator

            return GoogleTranslator(source=source, target=target)

    elif name == "libre":
        return LibreEngine(
            url=own.url if own.url.endswith("/") else own.url + "/",
            api_key=own.api_key,
            source=source,
            target=target,
            timeout=timeout,
            max_chars=max_chars,
            max_url_bytes=max_url_bytes,
        )

    elif name == "mymemory":

        def factory() -> Any:  # MyMemory cannot guess: the first source language
            from deep_translator import MyMemoryTranslator

            return MyMemoryTranslator(source=f"{languages[0]}-GB", target=f"{target}-FR")

    elif name == "microsoft":
        region = own.region or None

        def factory() -> Any:
            from deep_translator import MicrosoftTranslator

            return MicrosoftTranslator(
                source=source, target=target, api_key=own.api_key, region=region
            )

    elif name == "deepl":
        return DeeplEngine(
            api_key=own.api_key,
            source=source,
            target=target,
            timeout=timeout,
            max_chars=max_chars,
            server_url=own.url or None,
        )

    else:
        raise ConfigError(f"unknown translation engine {name!r}")
    return DeepTranslatorEngine(
        name=name,
        max_chars=max_chars,
        timeout=timeout,
        factory=factory,
        max_url_bytes=max_url_bytes,
    )


def build_engines(settings: TranslationSettings) -> list[Engine]:
    """The configured engine, then its fallbacks, in order."""
    return [build_engine(settings, name) for name in (settings.engine, *settings.fallback)]
