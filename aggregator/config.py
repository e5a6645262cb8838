"""config.toml -> frozen, typed settings.

Every table is described once, as a frozen dataclass; the loader walks the TOML against those
descriptions so that an unknown or misspelt key, a value of the wrong type and a missing
required value all become a ``ConfigError`` naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.errors import ConfigError

DEFAULT_CONFIG = "config.toml"
ENGINES = ("google", "libre", "deepl", "microsoft", "mymemory")

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


@dataclass(frozen=True)
class FetchSettings:
    allow_private_networks: bool = False
    timeout: Duration = Duration(20)
    max_redirects: int = 5
    max_body_bytes: int = 15 * 1024 * 1024
    user_agent: str = ""
    concurrency: int = 16
    per_host_concurrency: int = 2


@dataclass(frozen=True)
class EngineSettings:
    """Settings of one engine; which keys matter depends on the engine."""

    url: str = ""
    api_key: str = ""
    region: str = ""
    max_chars: int = 0
    timeout: Duration = Duration(0)


@dataclass(frozen=True)
class TranslationSettings:
    engine: str = "google"
    source_languages: tuple[str, ...] = ("en",)
    target_language: str = "fr"
    timeout: Duration = Duration(30)
    libre: EngineSettings = EngineSettings()
    google: EngineSettings = EngineSettings()
    deepl: EngineSettings = EngineSettings()
    microsoft: EngineSettings = EngineSettings()
    mymemory: EngineSettings = EngineSettings()

    def engine_settings(self, name: str) -> EngineSettings:
        settings: EngineSettings = getattr(self, name)
        return settings


@dataclass(frozen=True)
class ScheduleSettings:
    default_interval: Duration = Duration(30 * 60)
    backlog_interval: Duration = Duration(60)
    max_attempts_backoff: Duration = Duration(24 * 3600)


@dataclass(frozen=True)
class PublishSettings:
    max_entries: int = 50


@dataclass(frozen=True)
class FeedSettings:
    url: str
    name: str = ""
    interval: Duration | None = None

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
    feeds: tuple[FeedSettings, ...] = field(default_factory=tuple)

    def feed_interval(self, feed: FeedSettings) -> float:
        return float(feed.interval or self.schedule.default_interval)


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
    values = _build(Settings, raw, file, prefix="", skip=frozenset({"path"}))
    settings = Settings(path=file.resolve(), **values)
    settings = dataclasses.replace(
        settings,
        database=DatabaseSettings(url=_resolve_database_url(settings.database.url, file)),
        translation=_with_secrets_from_environment(settings.translation),
    )
    _check(settings, file)
    return settings


def _build(
    cls: type[Any], raw: Any, file: Path, prefix: str, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: [{prefix.rstrip('.')}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
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


def _with_secrets_from_environment(translation: TranslationSettings) -> TranslationSettings:
    """AGGREGATOR_<ENGINE>_API_KEY fills an empty api_key, so secrets stay out of the file."""
    updates: dict[str, EngineSettings] = {}
    for name in ENGINES:
        engine = translation.engine_settings(name)
        secret = os.environ.get(f"AGGREGATOR_{name.upper()}_API_KEY")
        if secret and not engine.api_key:
            updates[name] = dataclasses.replace(engine, api_key=secret)
    for name, engine in updates.items():
        translation = dataclasses.replace(translation, **{name: engine})  # type: ignore[arg-type]
    return translation


def _check(settings: Settings, file: Path) -> None:
    engine = settings.translation.engine
    if engine not in ENGINES:
        raise ConfigError(
            f"{file}: 'translation.engine' must be one of {', '.join(ENGINES)}, got {engine!r}"
        )
    if engine == "libre" and not settings.translation.libre.url:
        raise ConfigError(
            f"{file}: missing required key 'translation.libre.url' for engine 'libre'"
        )
    if (
        engine in ("deepl", "microsoft")
        and not settings.translation.engine_settings(engine).api_key
    ):
        raise ConfigError(
            f"{file}: engine '{engine}' needs 'translation.{engine}.api_key' "
            f"(or the environment variable AGGREGATOR_{engine.upper()}_API_KEY)"
        )
    base = urlsplit(settings.server.base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError(
            f"{file}: 'server.base_url' must be an http(s) URL, got {settings.server.base_url!r}"
        )
    if not 0 < settings.server.port < 65536:
        raise ConfigError(f"{file}: 'server.port' must be between 1 and 65535")
    seen: set[str] = set()
    for i, feed in enumerate(settings.feeds):
        parts = urlsplit(feed.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{file}: 'feeds[{i}].url' must be an http(s) URL, got {feed.url!r}")
        if feed.url in seen:
            raise ConfigError(f"{file}: 'feeds[{i}].url' is listed twice: {feed.url}")
        seen.add(feed.url)
