"""Translation engines behind one small interface, each call under a hard deadline.

deep-translator has no timeout, returns ``None`` on some inputs and is not thread-safe per
instance, so every call builds a fresh translator, runs in its own thread with a deadline,
and any failure, including empty output, becomes a ``TranslateError``.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from aggregator.config import TranslationSettings
from aggregator.errors import ConfigError, TranslateError

# Characters per request, from each engine's documentation (deep-translator refuses 5,000
# for Google; MyMemory's free tier takes 500).
DEFAULT_MAX_CHARS = {
    "google": 4999,
    "libre": 4999,
    "deepl": 4999,
    "microsoft": 9999,
    "mymemory": 499,
}

_request_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "request_timeout", default=None
)
_original_request = requests.Session.request


def _request_with_timeout(self: requests.Session, method: Any, url: Any, **kwargs: Any) -> Any:
    # deep-translator calls requests without a timeout; inside an engine call we add one, so
    # a server that never answers releases its socket instead of holding a thread forever.
    if kwargs.get("timeout") is None:
        kwargs["timeout"] = _request_timeout.get()
    return _original_request(self, method, url, **kwargs)


requests.Session.request = _request_with_timeout  # type: ignore[method-assign,assignment]


class Engine(Protocol):
    name: str
    max_chars: int

    def translate(self, text: str) -> str:
        """Translate plain text; raise TranslateError on any failure."""


@dataclass
class DeepTranslatorEngine:
    """One deep-translator engine; a fresh translator object per call."""

    name: str
    max_chars: int
    timeout: float
    factory: Callable[[], Any]

    def translate(self, text: str) -> str:
        outcome: dict[str, Any] = {}

        def call() -> None:
            _request_timeout.set(self.timeout)
            try:
                outcome["text"] = self.factory().translate(text)
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=call, name=f"translate-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise TranslateError(f"{self.name}: no answer within {self.timeout:.0f} s")
        if "error" in outcome:
            raise _as_translate_error(self.name, outcome["error"])
        translated = outcome.get("text")
        if not isinstance(translated, str) or not translated.strip():
            raise TranslateError(f"{self.name}: the engine returned no text")
        return translated


def _as_translate_error(engine: str, exc: BaseException) -> TranslateError:
    if isinstance(exc, TranslateError):
        return exc
    if isinstance(exc, requests.Timeout):
        return TranslateError(f"{engine}: the request timed out")
    if isinstance(exc, requests.ConnectionError):
        return TranslateError(f"{engine}: cannot connect to the translation service")
    message = str(exc).strip() or type(exc).__name__
    retry_after = 60.0 if "429" in message or "too many" in message.lower() else None
    return TranslateError(f"{engine}: {message}", retry_after=retry_after)


def build_engine(settings: TranslationSettings, name: str | None = None) -> Engine:
    """The engine named in [translation] engine, configured from its own table."""
    name = name or settings.engine
    own = settings.engine_settings(name)
    timeout = float(own.timeout or settings.timeout)
    max_chars = own.max_chars or DEFAULT_MAX_CHARS[name]
    source = settings.source_languages[0] if settings.source_languages else "en"
    target = settings.target_language
    factory: Callable[[], Any]
    if name == "google":
        from deep_translator import GoogleTranslator

        def factory() -> Any:
            return GoogleTranslator(source=source, target=target)

    elif name == "libre":
        from deep_translator import LibreTranslator

        url = own.url if own.url.endswith("/") else own.url + "/"
        # deep-translator insists on a key even for servers that need none.
        api_key = own.api_key or "none"

        def factory() -> Any:
            return LibreTranslator(source=source, target=target, api_key=api_key, custom_url=url)

    elif name == "mymemory":
        from deep_translator import MyMemoryTranslator

        def factory() -> Any:
            return MyMemoryTranslator(source=f"{source}-GB", target=f"{target}-FR")

    elif name == "microsoft":
        from deep_translator import MicrosoftTranslator

        region = own.region or None

        def factory() -> Any:
            return MicrosoftTranslator(
                source=source, target=target, api_key=own.api_key, region=region
            )

    elif name == "deepl":
        from deep_translator import DeeplTranslator

        def factory() -> Any:
            return DeeplTranslator(
                source=source, target=target, api_key=own.api_key, use_free_api=True
            )

    else:
        raise ConfigError(f"unknown translation engine {name!r}")
    return DeepTranslatorEngine(name=name, max_chars=max_chars, timeout=timeout, factory=factory)
