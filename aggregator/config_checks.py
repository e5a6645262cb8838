"""What config.toml must hold beyond its types: engines and their required keys, URLs,
review and LLM settings, operations limits. Every failure is a ``ConfigError`` naming the key
and the file. ``config.from_dict`` runs ``check`` once the settings are typed."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aggregator.errors import ConfigError

if TYPE_CHECKING:
    from aggregator.config import FeedDefaults, LLMSettings, Settings, TranslationSettings

ENGINES = ("google", "libre", "deepl", "microsoft", "mymemory", "llm")
HEADLINES = ("literal", "adapt")
# The choices of each per-feed key ([defaults] and [[feeds]]).
FEED_CHOICES = {
    "review": ("manual", "auto"),
    "translate": ("full", "title"),
    "full_text": ("auto", "feed", "page"),
}
_INSTANCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def check(settings: Settings, file: Path) -> None:
    """ConfigError naming the key and the file when values that each parsed well do not fit
    together or fall outside what the program accepts."""
    _check_engine(settings.translation, settings.translation.engine, "translation.engine", file)
    _check_translation(settings.translation, file)
    base = urlsplit(settings.server.base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError(
            f"{file}: 'server.base_url' must be an http(s) URL, got {settings.server.base_url!r}"
        )
    if not 0 < settings.server.port < 65536:
        raise ConfigError(f"{file}: 'server.port' must be between 1 and 65535")
    sources = settings.translation.source_languages
    check_feed_keys(settings.defaults, "defaults", file, sources)
    seen: set[str] = set()
    for i, feed in enumerate(settings.feeds):
        check_feed_keys(feed, f"feeds[{i}]", file, sources)
        try:
            parts = urlsplit(feed.url)
        except ValueError as exc:  # "Invalid IPv6 URL"
            raise ConfigError(f"{file}: 'feeds[{i}].url' is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{file}: 'feeds[{i}].url' must be an http(s) URL, got {feed.url!r}")
        if feed.url in seen:
            raise ConfigError(f"{file}: 'feeds[{i}].url' is listed twice: {feed.url}")
        if feed.engine:
            _check_engine(settings.translation, feed.engine, f"feeds[{i}].engine", file)
        seen.add(feed.url)
    _check_review(settings, file)
    _check_operations(settings, file)


def _check_review(settings: Settings, file: Path) -> None:
    """The hub is an http(s) URL; limits of the review desk are positive."""
    hub = settings.publish.hub_url
    if hub and (urlsplit(hub).scheme not in ("http", "https") or not urlsplit(hub).netloc):
        raise ConfigError(f"{file}: 'publish.hub_url' must be an http(s) URL, got {hub!r}")
    if settings.publish.max_entries < 1:
        raise ConfigError(f"{file}: 'publish.max_entries' must be at least 1")
    if settings.publish.home_page_size < 1:
        raise ConfigError(f"{file}: 'publish.home_page_size' must be at least 1")
    review = settings.review
    for key in ("login_attempts", "max_body_bytes"):
        if getattr(review, key) < 1:
            raise ConfigError(f"{file}: 'review.{key}' must be at least 1")
    if review.language:
        from aggregator.i18n import available_languages  # Babel: only where one is set

        if review.language not in available_languages():
            raise ConfigError(
                f"{file}: 'review.language' must be one of {', '.join(available_languages())} "
                f"(a catalogue in aggregator/locale/), got {review.language!r}"
            )
    for i, proxy in enumerate(settings.server.trusted_proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"{file}: 'server.trusted_proxies[{i}]' must be an IP address or network "
                f'such as "127.0.0.1" or "10.0.0.0/8", got {proxy!r}'
            ) from None


def check_feed_keys(
    feed: FeedDefaults, table: str, file: Path, source_languages: tuple[str, ...] = ("en",)
) -> None:
    """The per-feed keys of ``[defaults]`` or of one ``[[feeds]]`` table (``table``)."""
    from aggregator.feed_rules import Rule, RuleError

    for i, code in enumerate(feed.languages):
        key = f"{table}.languages[{i}]"
        check_language_code(code, key, file)
        if code in feed.languages[:i]:
            raise ConfigError(f"{file}: '{key}': {code!r} is listed twice")
        if code in source_languages:
            raise ConfigError(
                f"{file}: '{key}': {code!r} is a language the articles are translated from "
                "([translation] source_languages), not one to translate them into"
            )

    for key, choices in FEED_CHOICES.items():
        value = getattr(feed, key)
        if value not in choices:
            raise ConfigError(
                f"{file}: '{table}.{key}' must be one of {', '.join(map(repr, choices))}, "
                f"got {value!r}"
            )
    selectors = [("selector", feed.selector)] if feed.selector else []
    selectors += [(f"remove[{i}]", css) for i, css in enumerate(feed.remove)]
    for key, css in selectors:
        from lxml.cssselect import CSSSelector, SelectorError  # only where a feed has one

        try:
            CSSSelector(css)
        except SelectorError as exc:
            raise ConfigError(
                f"{file}: '{table}.{key}' is not a CSS selector ({css!r}: {exc})"
            ) from None
    for name in ("include", "exclude"):
        for i, written in enumerate(getattr(feed, name)):
            try:
                Rule.parse(written)
            except RuleError as exc:
                raise ConfigError(f"{file}: '{table}.{name}[{i}]': {exc}") from None
    for header, reference in feed.headers.items():
        key = f"{table}.headers.{header}"
        if not _HEADER_NAME.match(header):
            raise ConfigError(f"{file}: '{key}': {header!r} is not an HTTP header name")
        try:
            header_value(reference, file.parent)
        except ValueError as exc:
            raise ConfigError(f"{file}: '{key}': {exc}") from None


def check_language_code(code: str, key: str, file: Path) -> None:
    """``code`` is a language Babel's locale data knows, written as its ISO 639 code
    ("fr", "es", "pt"): what the drafts, their feeds' ``xml:lang`` and paths carry."""
    from babel import Locale, UnknownLocaleError  # only where a language is named

    known = False
    if _LANGUAGE_CODE.match(code):
        try:
            known = Locale.parse(code).language == code
        except (ValueError, UnknownLocaleError):
            known = False
    if not known:
        raise ConfigError(
            f'{file}: \'{key}\' must be a language code such as "fr", "es" or "de" '
            f"(ISO 639), got {code!r}"
        )


def header_value(reference: str, directory: Path) -> str:
    """The value of a per-feed header, read from where ``reference`` says: ``env:NAME`` or
    ``file:PATH`` (relative to the config file's directory). ValueError says what is wrong,
    never the value."""
    kind, _, where = reference.partition(":")
    where = where.strip()
    if kind == "env" and where:
        value = os.environ.get(where)
        if value is None:
            raise ValueError(f"the environment variable {where} is not set")
    elif kind == "file" and where:
        path = directory / where
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc.__class__.__name__}") from None
    else:
        raise ValueError(
            'a header is read from "env:VARIABLE" or "file:PATH", never written in config.toml'
        )
    value = value.strip()
    if not value or any(c in value for c in "\r\n\0"):
        raise ValueError(f"{reference} holds no value usable in an HTTP header")
    return value


def _check_translation(translation: TranslationSettings, file: Path) -> None:
    """Fallback engines are known and usable; glossary entries are not empty."""
    if translation.recurring_blocks not in ("drop", "keep"):
        raise ConfigError(
            f'{file}: \'translation.recurring_blocks\' must be "drop" or "keep", '
            f"got {translation.recurring_blocks!r}"
        )
    seen = {translation.engine}
    for i, name in enumerate(translation.fallback):
        key = f"translation.fallback[{i}]"
        if name in seen:
            raise ConfigError(f"{file}: '{key}': engine {name!r} is already in the chain")
        seen.add(name)
        _check_engine(translation, name, key, file)
    for name in ENGINES:
        if translation.engine_settings(name).daily_characters < 0:
            raise ConfigError(f"{file}: 'translation.{name}.daily_characters' must be >= 0")
    if translation.breaker_threshold < 1:
        raise ConfigError(f"{file}: 'translation.breaker_threshold' must be at least 1")
    for name, llm in translation.llms.items():
        if name in ENGINES or not _INSTANCE_NAME.match(name):
            raise ConfigError(
                f"{file}: [translation.llms.{name}]: an engine's name is lowercase letters, "
                f"digits and _, and not one of {', '.join(ENGINES)}"
            )
        _check_llm(llm, translation.llm_table(name), file)
    check_language_code(translation.target_language, "translation.target_language", file)
    glossaries = {"translation.glossary": translation.glossary}
    for code, glossary in translation.glossaries.items():
        check_language_code(code, f"translation.glossaries.{code}", file)
        glossaries[f"translation.glossaries.{code}"] = glossary
    for table, glossary in glossaries.items():
        for i, term in enumerate(glossary.keep):
            if not term.strip():
                raise ConfigError(f"{file}: '{table}.keep[{i}]' is empty")
        for term, translated in glossary.force.items():
            if not term.strip() or not translated.strip():
                raise ConfigError(
                    f"{file}: '{table}.force' needs a non-empty term and translation, "
                    f"got {term!r} = {translated!r}"
                )


def _check_engine(translation: TranslationSettings, name: str, key: str, file: Path) -> None:
    """The engine ``name`` (given at ``key``) exists and has what it needs to run."""
    known = (*ENGINES, *translation.llms)
    if name not in known:
        raise ConfigError(f"{file}: '{key}' must be one of {', '.join(known)}, got {name!r}")
    if name == "llm":
        _check_llm(translation.llm, "translation.llm", file)
    if name == "libre" and not translation.libre.url:
        raise ConfigError(f"{file}: missing required key 'translation.libre.url' for '{key}'")
    if name in ("deepl", "microsoft") and not translation.engine_settings(name).api_key:
        raise ConfigError(
            f"{file}: engine '{name}' in '{key}' needs 'translation.{name}.api_key' "
            f"(or the environment variable AGGREGATOR_{name.upper()}_API_KEY)"
        )


def _check_llm(llm: LLMSettings, table: str, file: Path) -> None:
    """An LLM engine needs its endpoint and model; its numbers make sense."""
    for key in ("url", "region", "max_chars", "daily_characters"):
        if getattr(llm, key):
            raise ConfigError(f"{file}: '{table}.{key}' is not a setting of the llm engine")
    base = urlsplit(llm.base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError(
            f"{file}: '{table}.base_url' must be the endpoint's http(s) URL such as "
            f'"http://127.0.0.1:11434/v1", got {llm.base_url!r}'
        )
    if not llm.model.strip():
        raise ConfigError(f"{file}: missing required key '{table}.model'")
    if llm.headline not in HEADLINES:
        raise ConfigError(
            f'{file}: \'{table}.headline\' must be "literal" or "adapt", got {llm.headline!r}'
        )
    if not 0 <= llm.temperature <= 2:
        raise ConfigError(f"{file}: '{table}.temperature' must be between 0 and 2")
    for key in ("price_input_per_mtok", "price_output_per_mtok", "daily_tokens", "daily_cost"):
        if getattr(llm, key) < 0:
            raise ConfigError(f"{file}: '{table}.{key}' must be >= 0")
    if llm.batch_tokens < 100:
        raise ConfigError(f"{file}: '{table}.batch_tokens' must be at least 100")
    if llm.context_units < 0:
        raise ConfigError(f"{file}: '{table}.context_units' must be >= 0")
    if llm.prompt_file and not Path(llm.prompt_file).is_file():
        raise ConfigError(f"{file}: '{table}.prompt_file': no such file {llm.prompt_file!r}")


LOG_FORMATS = ("auto", "journal", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _check_operations(settings: Settings, file: Path) -> None:
    """Concurrency is positive; the shutdown grace fits systemd's stop timeout; known log keys."""
    if settings.schedule.entry_concurrency < 1:
        raise ConfigError(f"{file}: 'schedule.entry_concurrency' must be at least 1")
    if settings.fetch.parse_timeout <= 0:
        raise ConfigError(f"{file}: 'fetch.parse_timeout' must be longer than 0s")
    if settings.schedule.shutdown_grace > 8:
        raise ConfigError(
            f"{file}: 'schedule.shutdown_grace' must be at most 8s (the daemon exits within 10s)"
        )
    if settings.log.format not in LOG_FORMATS:
        raise ConfigError(
            f"{file}: 'log.format' must be one of {', '.join(LOG_FORMATS)}, "
            f"got {settings.log.format!r}"
        )
    if settings.log.level not in LOG_LEVELS:
        raise ConfigError(
            f"{file}: 'log.level' must be one of {', '.join(LOG_LEVELS)}, "
            f"got {settings.log.level!r}"
        )
