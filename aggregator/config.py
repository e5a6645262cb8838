"""config.toml -> frozen, typed settings.

Every table is described once, as a frozen dataclass; the loader walks the TOML against those
descriptions so that an unknown or misspelt key, a value of the wrong type and a missing
required value all become a ``ConfigError`` naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator.config_checks import ENGINES, check
from aggregator.errors import ConfigError

DEFAULT_CONFIG = "config.toml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: str | int | float) -> float:
    """'30m' -> 1800.0; plain numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30m', got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"expected a duration such as '90s', '30m', '2h' or '1d', got {value!r}"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


class Duration(float):
    """Seconds, written in config.toml as '30m', '2h', '90s' or a number of seconds."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///aggregator.db"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = "http://127.0.0.1:8080"
    title: str = "Newsletters en français"
    # Addresses (or networks) of the reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; empty: none, the TCP peer is the client.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class FetchSettings:
    allow_private_networks: bool = False
    timeout: Duration = Duration(20)
    max_redirects: int = 5
    max_body_bytes: int = 15 * 1024 * 1024
    user_agent: str = ""
    concurrency: int = 16
    per_host_concurrency: int = 2
    # How long parsing one feed may take (in a child process) before it is abandoned as
    # that feed's error; the web server and the scheduler never wait for it.
    parse_timeout: Duration = Duration(30)
    # How long extracting one article from its page may take (in a child process) before
    # it is abandoned as that entry's error, retried later.
    extract_timeout: Duration = Duration(60)


@dataclass(frozen=True)
class EngineSettings:
    """Settings of one engine; which keys matter depends on the engine."""

    url: str = ""
    api_key: str = ""
    region: str = ""
    max_chars: int = 0
    timeout: Duration = Duration(0)
    # Characters this engine may receive per UTC day; 0 means no budget.
    daily_characters: int = 0


@dataclass(frozen=True)
class LLMSettings(EngineSettings):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp, …)."""

    base_url: str = ""
    model: str = ""
    temperature: float = 0.2
    # A prompt template replacing the one shipped (aggregator/translation/prompts/).
    prompt_file: str = ""
    # The publication's own style rules, added after the prompt's house style and winning
    # over it: "Tutoyez le lecteur.", "Écrivez « 97 milliards de dollars », jamais « Md$ »."
    style: str = ""
    # "adapt": the engine also proposes a headline written for French readers.
    headline: str = "literal"
    # Money per million tokens, in the account's currency; 0: not counted.
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    # Tokens (in + out) and money the engine may spend per UTC day; 0 means no budget.
    daily_tokens: int = 0
    daily_cost: float = 0.0
    # Estimated tokens of units per request, and units shown around a batch as context.
    batch_tokens: int = 2000
    context_units: int = 2


@dataclass(frozen=True)
class GlossarySettings:
    """Terms kept exactly as written, and terms always translated the same way."""

    keep: tuple[str, ...] = ()
    force: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TranslationSettings:
    engine: str = "google"
    source_languages: tuple[str, ...] = ("en",)
    target_language: str = "fr"
    timeout: Duration = Duration(30)
    # Engines tried in order when the one above fails, is paused or has spent its budget.
    fallback: tuple[str, ...] = ()
    # Consecutive failures that pause an engine, and for how long at first.
    breaker_threshold: int = 3
    breaker_cooldown: Duration = Duration(60)
    glossary: GlossarySettings = GlossarySettings()
    # The glossary of one more target language ([translation.glossaries.es]): its ``keep``
    # adds to the one above, its ``force`` is that pair's own (the one above is
    # target_language's).
    glossaries: dict[str, GlossarySettings] = field(default_factory=dict)
    # Blocks that recur across a feed's entries (a newsletter's intro and sign-off):
    # "drop" them from every draft (listed in its warnings) or "keep" them (one translation).
    recurring_blocks: str = "drop"
    # The OpenAI-compatible endpoint of ``engine = "llm"``, and more, each named by its table
    # ([translation.llms.NAME]): ``engine = "NAME"`` in [translation], [[feeds]] or fallback
    # picks one.
    llm: LLMSettings = LLMSettings()
    llms: dict[str, LLMSettings] = field(default_factory=dict)
    # The other engines' tables ([translation.libre], …).
    libre: EngineSettings = EngineSettings()
    google: EngineSettings = EngineSettings()
    deepl: EngineSettings = EngineSettings()
    microsoft: EngineSettings = EngineSettings()
    mymemory: EngineSettings = EngineSettings()

    def glossary_for(self, language: str) -> GlossarySettings:
        """The glossary of the pair from the source languages into ``language``: the terms
        kept as written whatever the language, and the forced translations of that pair."""
        own = self.glossaries.get(language, GlossarySettings())
        base = self.glossary
        force = base.force if language == self.target_language else {}
        return GlossarySettings(
            keep=tuple(dict.fromkeys((*base.keep, *own.keep))), force={**force, **own.force}
        )

    def for_language(self, language: str) -> TranslationSettings:
        """These settings translating into ``language``: what engines are built with."""
        if language == self.target_language:
            return self
        return dataclasses.replace(self, target_language=language)

    def engine_settings(self, name: str) -> EngineSettings:
        if name in self.llms:
            return self.llms[name]
        settings: EngineSettings = getattr(self, name)
        return settings

    def is_llm(self, name: str) -> bool:
        """Is the engine named ``name`` an LLM (``llm`` or one of [translation.llms])?"""
        return name == "llm" or name in self.llms

    def llm_settings(self, name: str = "llm") -> LLMSettings:
        return self.llm if name == "llm" else self.llms[name]

    def llm_table(self, name: str = "llm") -> str:
        """Where the LLM engine named ``name`` is configured, for messages."""
        return "translation.llm" if name == "llm" else f"translation.llms.{name}"


@dataclass(frozen=True)
class ScheduleSettings:
    default_interval: Duration = Duration(30 * 60)
    backlog_interval: Duration = Duration(60)
    max_attempts_backoff: Duration = Duration(24 * 3600)
    # A feed that rewrites an entry on every fetch must not get it re-translated all day.
    max_updates_per_entry_per_day: int = 3
    # How long a claim on a feed or an entry lasts; a running daemon renews its claims, so
    # this is how soon the work of a crashed process is taken up again.
    lease: Duration = Duration(5 * 60)
    # Entries one process takes through the pipeline at once (translation is latency-bound).
    entry_concurrency: int = 4
    # On SIGTERM, how long in-flight entries may take to finish before they are released.
    shutdown_grace: Duration = Duration(5)


@dataclass(frozen=True)
class LogSettings:
    # "journal": one line per record, "<priority>key=value …", for journald; "text": for a
    # terminal; "auto": journal when stderr is connected to the journal ($JOURNAL_STREAM).
    format: str = "auto"
    level: str = "info"


@dataclass(frozen=True)
class PublishSettings:
    max_entries: int = 50
    # Articles on one page of the public home page (/, /?page=2, …).
    home_page_size: int = 20
    # WebSub hub told about every change of the published feeds ("" = none).
    hub_url: str = ""
    # How long a rendered feed is served before the database is asked whether it changed.
    cache_ttl: Duration = Duration(1)
    # Cache-Control max-age of the public feeds and article pages.
    max_age: Duration = Duration(300)
    # Where the published feeds and pages are written, for any web server to serve; a
    # relative path is relative to the config file. Default: "publication" beside the
    # SQLite database, else beside the config file.
    directory: str = ""


@dataclass(frozen=True)
class ReviewSettings:
    """Who may use /review/ and /api/, and how they prove it. Secrets never live here:
    only the names of the environment variables or files that hold them."""

    password_env: str = "AGGREGATOR_REVIEW_PASSWORD"  # noqa: S105 - a variable's name
    password_file: str = ""
    # Names accepted at login; empty means any name (all editors share the password).
    reviewers: tuple[str, ...] = ()
    # "name:token" pairs, comma-separated in the variable, one per line in the file.
    api_tokens_env: str = "AGGREGATOR_API_TOKENS"
    api_tokens_file: str = ""
    session_secret_env: str = "AGGREGATOR_SESSION_SECRET"  # noqa: S105 - a variable's name
    # Default: "session-secret" in $STATE_DIRECTORY, else beside the SQLite database.
    session_secret_file: str = ""
    session_lifetime: Duration = Duration(12 * 3600)
    # A session unused this long is over (it is kept alive by using the desk).
    session_idle_timeout: Duration = Duration(8 * 3600)
    # Failed logins in a row, per account and client, before each further attempt waits
    # login_delay, then twice as long each time, at most login_window.
    login_attempts: int = 5
    login_delay: Duration = Duration(1)
    login_window: Duration = Duration(15 * 60)
    max_body_bytes: int = 1024 * 1024
    # The desk's and the editor's CLI language (a catalogue in aggregator/locale/, or "en");
    # empty: the translation's target language when it has a catalogue, else English.
    language: str = ""


@dataclass(frozen=True)
class FeedDefaults:
    """What ``[defaults]`` sets for every feed and a ``[[feeds]]`` table for its own feed."""

    interval: Duration | None = None
    # May this feed's article links, redirects and discovered links reach private
    # addresses? Unset: [fetch] allow_private_networks. Its own URL's origin always may.
    allow_private_networks: bool | None = None
    # The engine for this feed's articles instead of [translation] engine; [translation]
    # fallback, without this engine, follows it.
    engine: str = ""
    # "auto": a complete draft without warnings is published at once, marked unreviewed.
    review: str = "manual"
    # "title": only the title is translated; the draft links to the original article.
    translate: str = "full"
    # Where the article is taken from: "auto" (the feed when it holds the whole text, else
    # the page), "feed" or "page"; ``selector`` (CSS) picks it in the page, ``remove`` drops
    # a site's own boilerplate from it.
    full_text: str = "auto"
    selector: str = ""
    remove: tuple[str, ...] = ()
    # Which entries are translated at all (aggregator/feed_rules.py): "FIELD:PATTERN".
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # The languages this feed is translated into, one draft each; empty: [translation]
    # target_language alone.
    languages: tuple[str, ...] = ()
    # Request headers for the feed's own host (a Cookie, an Authorization), each value read
    # from "env:VARIABLE" or "file:PATH" at every fetch: never written in this file.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FeedSettings(FeedDefaults):
    url: str
    name: str = ""

    @property
    def display_name(self) -> str:
        return self.name or self.url


@dataclass(frozen=True)
class Settings:
    path: Path
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    fetch: FetchSettings = FetchSettings()
    translation: TranslationSettings = TranslationSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    publish: PublishSettings = PublishSettings()
    review: ReviewSettings = ReviewSettings()
    log: LogSettings = LogSettings()
    defaults: FeedDefaults = FeedDefaults()
    feeds: tuple[FeedSettings, ...] = field(default_factory=tuple)

    def feed_interval(self, feed: FeedSettings) -> float:
        return float(feed.interval or self.schedule.default_interval)

    def feed(self, feed_url: str) -> FeedSettings:
        """The settings of the feed written as ``feed_url`` in config.toml; a feed no longer
        listed there gets ``[defaults]``."""
        found = self._feeds_by_url.get(feed_url)
        return found or FeedSettings(url=feed_url, **_fields_of(self.defaults))

    @functools.cached_property
    def _feeds_by_url(self) -> dict[str, FeedSettings]:
        # Asked for each feed polled and several times for each entry: one lookup, not a
        # walk through every feed.
        return {feed.url: feed for feed in self.feeds}

    def feed_languages(self, feed_url: str) -> tuple[str, ...]:
        """The target languages of the feed written as ``feed_url`` in config.toml, the
        first one first: its own ``languages``, else [translation] target_language."""
        return self.feed(feed_url).languages or (self.translation.target_language,)

    @functools.cached_property
    def published_languages(self) -> tuple[str, ...]:
        """Every language the publication has feeds in: [translation] target_language
        (served at the root paths too), then the others as config.toml first names them."""
        named = [self.translation.target_language, *self.defaults.languages]
        for feed in self.feeds:
            named.extend(feed.languages)
        return tuple(dict.fromkeys(named))

    def private_networks_allowed(self, feed_url: str) -> bool:
        """Whether URLs from the content of the feed written as ``feed_url`` in config.toml
        may reach private addresses: the feed's own key, else ``[fetch]``'s."""
        allowed = self.feed(feed_url).allow_private_networks
        return self.fetch.allow_private_networks if allowed is None else allowed

    def feed_engine(self, feed_url: str) -> str:
        """The engine that translates the articles of the feed written as ``feed_url`` in
        config.toml: its own ``engine`` key, else ``[translation] engine``."""
        return self.feed(feed_url).engine or self.translation.engine


def _fields_of(values: Any) -> dict[str, Any]:
    return {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $AGGREGATOR_CONFIG, else ./config.toml."""
    chosen = explicit or os.environ.get("AGGREGATOR_CONFIG") or DEFAULT_CONFIG
    return Path(chosen)


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate a config file; every problem is a ConfigError naming key and file."""
    file = config_path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the configuration file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return from_dict(raw, file)


def from_dict(raw: dict[str, Any], file: Path) -> Settings:
    raw = _with_feed_defaults(raw, file)
    values = _build(Settings, raw, file, prefix="", skip=frozenset({"path"}))
    settings = Settings(path=file.resolve(), **values)
    settings = dataclasses.replace(
        settings,
        database=DatabaseSettings(url=_resolve_database_url(settings.database.url, file)),
        translation=_with_prompt_file_resolved(
            _with_secrets_from_environment(settings.translation), file
        ),
    )
    settings = dataclasses.replace(
        settings,
        publish=dataclasses.replace(
            settings.publish, directory=_publication_directory(settings, file)
        ),
    )
    check(settings, file)
    return settings


def _with_feed_defaults(raw: dict[str, Any], file: Path) -> dict[str, Any]:
    """Each ``[[feeds]]`` table over ``[defaults]``: a key the feed sets wins."""
    defaults = raw.get("defaults", {})
    _build(FeedDefaults, defaults, file, prefix="defaults.")  # its errors name [defaults]
    feeds = raw.get("feeds")
    if not defaults or not isinstance(feeds, list):
        return raw
    merged = [{**defaults, **feed} if isinstance(feed, dict) else feed for feed in feeds]
    return {**raw, "feeds": merged}


_Shape = tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]
_SHAPES: dict[type[Any], _Shape] = {}


def _shape_of(cls: type[Any]) -> _Shape:
    """A settings class's type hints and fields, worked out once: resolving the hints is
    most of the time a config of many feeds takes to load, once per ``[[feeds]]`` table."""
    shape = _SHAPES.get(cls)
    if shape is None:
        shape = _SHAPES[cls] = (
            typing.get_type_hints(cls),
            {f.name: f for f in dataclasses.fields(cls)},
        )
    return shape


def _build(
    cls: type[Any], raw: Any, file: Path, prefix: str, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: [{prefix.rstrip('.')}] must be a table")
    hints, all_fields = _shape_of(cls)
    fields = {name: f for name, f in all_fields.items() if name not in skip}
    for key in raw:
        if key not in fields:
            known = sorted(fields)
            guess = difflib.get_close_matches(key, known, n=1)
            hint = (
                f" (did you mean '{prefix}{guess[0]}'?)"
                if guess
                else f" (known keys: {', '.join(known)})"
            )
            raise ConfigError(f"{file}: unknown key '{prefix}{key}'{hint}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{file}: missing required key '{key}'")
            continue
        values[name] = _convert(hints[name], raw[name], file, key)
    return values


def _convert(kind: Any, value: Any, file: Path, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(options[0], value, file, key)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return kind(**_build(kind, value, file, prefix=f"{key}."))
    if origin is tuple:
        item_kind = typing.get_args(kind)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{file}: '{key}' must be a list, got {_describe(value)}")
        if dataclasses.is_dataclass(item_kind):
            return tuple(_convert(item_kind, v, file, f"{key}[{i}]") for i, v in enumerate(value))
        return tuple(_convert(item_kind, v, file, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: '{key}' must be a table, got {_describe(value)}")
        value_kind = typing.get_args(kind)[1]
        return {str(k): _convert(value_kind, v, file, f"{key}.{k}") for k, v in value.items()}
    if kind is Duration:
        try:
            return Duration(parse_duration(value))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{file}: '{key}': {exc}") from None
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{file}: '{key}' must be true or false, got {_describe(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{file}: '{key}' must be an integer, got {_describe(value)}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{file}: '{key}' must be a number, got {_describe(value)}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{file}: '{key}' must be a string, got {_describe(value)}")
        return value
    raise ConfigError(f"{file}: '{key}' has an unsupported type")  # pragma: no cover


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _resolve_database_url(url: str, file: Path) -> str:
    """Relative SQLite paths are relative to the config file, not the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("file:"):
            return prefix + str((file.resolve().parent / rest).resolve())
    return url


def _publication_directory(settings: Settings, file: Path) -> str:
    """[publish] directory made absolute: relative to the config file, like the database."""
    if settings.publish.directory:
        return str((file.resolve().parent / settings.publish.directory).resolve())
    prefix = "sqlite:///"
    url = settings.database.url
    if url.startswith(prefix) and Path(url[len(prefix) :]).is_absolute():
        return str(Path(url[len(prefix) :]).parent / "publication")
    return str(file.resolve().parent / "publication")


def _with_secrets_from_environment(translation: TranslationSettings) -> TranslationSettings:
    """AGGREGATOR_<ENGINE>_API_KEY fills an empty api_key, so secrets stay out of the file."""
    updates: dict[str, EngineSettings] = {}
    for name in ENGINES:
        engine = translation.engine_settings(name)
        secret = os.environ.get(f"AGGREGATOR_{name.upper()}_API_KEY") or _credential(
            f"{name}_api_key"
        )
        if secret and not engine.api_key:
            updates[name] = dataclasses.replace(engine, api_key=secret)
    for name, engine in updates.items():
        translation = dataclasses.replace(translation, **{name: engine})  # type: ignore[arg-type]
    named = {
        name: dataclasses.replace(llm, api_key=secret)
        if not llm.api_key and (secret := _named_secret(name))
        else llm
        for name, llm in translation.llms.items()
    }
    return dataclasses.replace(translation, llms=named)


def _named_secret(name: str) -> str | None:
    return os.environ.get(f"AGGREGATOR_{name.upper()}_API_KEY") or _credential(f"{name}_api_key")


def _with_prompt_file_resolved(translation: TranslationSettings, file: Path) -> TranslationSettings:
    """A relative prompt_file is relative to the config file, like the database."""

    def resolved(llm: LLMSettings) -> LLMSettings:
        prompt = llm.prompt_file
        if not prompt or Path(prompt).is_absolute():
            return llm
        return dataclasses.replace(llm, prompt_file=str(file.resolve().parent / prompt))

    return dataclasses.replace(
        translation,
        llm=resolved(translation.llm),
        llms={name: resolved(llm) for name, llm in translation.llms.items()},
    )


def _credential(name: str) -> str | None:
    """A secret handed over by systemd (LoadCredential=NAME:PATH), never seen by other units."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    try:
        return (Path(directory) / name).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
