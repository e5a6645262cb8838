"""Who may review: the password, signed session cookies, CSRF tokens, login throttling and
API tokens.

Secrets come from environment variables or files named in ``[review]``, never from
config.toml itself. Every comparison of a secret runs in constant time over fixed-length
digests. Sessions are stateless, HMAC-signed cookies (several processes share them through
the session secret); each one carries its own CSRF token, derived from the session id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aggregator.config import Settings
from aggregator.errors import ConfigError

SESSION_COOKIE = "aggregator_session"
LOGIN_COOKIE = "aggregator_login"
SECRET_FILE_NAME = "session-secret"  # noqa: S105 - a file name
MAX_NAME_CHARACTERS = 100
# Failures from all clients together before everyone waits: slows a distributed guess.
GLOBAL_ATTEMPTS_FACTOR = 20


def _digest(value: str | bytes) -> bytes:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()


def same_secret(given: str, expected: str) -> bool:
    """Constant time whatever the lengths: both sides are hashed first."""
    return hmac.compare_digest(_digest(given), _digest(expected))


@dataclass(frozen=True)
class Reviewer:
    name: str
    session_id: str  # "" for an API token
    via_token: bool = False


@dataclass(frozen=True)
class Secrets:
    password: str | None
    tokens: tuple[tuple[str, str], ...]  # (name, token)
    session_key: bytes


def load_secrets(settings: Settings) -> Secrets:
    review = settings.review
    base = settings.path.parent
    password = os.environ.get(review.password_env, "") if review.password_env else ""
    if not password and review.password_file:
        password = _read_secret_file(base / review.password_file, "review.password_file")
    tokens_text = os.environ.get(review.api_tokens_env, "") if review.api_tokens_env else ""
    if review.api_tokens_file:
        tokens_text += "\n" + _read_secret_file(
            base / review.api_tokens_file, "review.api_tokens_file"
        )
    return Secrets(
        password=password or None,
        tokens=_parse_tokens(tokens_text),
        session_key=_session_key(settings),
    )


def _read_secret_file(path: Path, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"'{key}': cannot read {path}: {exc.strerror}") from None


def _parse_tokens(text: str) -> tuple[tuple[str, str], ...]:
    tokens = []
    for raw in text.replace(",", "\n").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, token = line.rpartition(":")
        if not separator:
            name, token = "api", line
        if len(token) < 16:
            raise ConfigError(
                f"API token for {name or 'api'!r} is too short ({len(token)} characters; "
                "use at least 16, e.g. from `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe())'`)"
            )
        tokens.append((name.strip() or "api", token.strip()))
    return tuple(tokens)


def state_directory(settings: Settings) -> Path:
    """$STATE_DIRECTORY (systemd), else the SQLite database's folder, else the config's."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    url = settings.database.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///")).parent
    return settings.path.parent


def _session_key(settings: Settings) -> bytes:
    review = settings.review
    from_env = os.environ.get(review.session_secret_env, "") if review.session_secret_env else ""
    if from_env:
        return _digest(from_env)
    if review.session_secret_file:
        path = settings.path.parent / review.session_secret_file
    else:
        path = state_directory(settings) / SECRET_FILE_NAME
    try:
        return _digest(path.read_bytes().strip())
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read the session secret {path}: {exc.strerror}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
    except FileExistsError:
        pass  # another process wrote it first: use theirs
    except OSError as exc:
        raise ConfigError(
            f"cannot create the session secret {path}: {exc.strerror} (set "
            f"${review.session_secret_env} or 'review.session_secret_file')"
        ) from None
    return _digest(path.read_bytes().strip())


class LoginThrottle:
    """At most ``attempts`` failed logins per client per ``window`` seconds (and twenty
    times that from everyone), counted in this process."""

    def __init__(self, attempts: int, window: float, clock: Callable[[], float]) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._everyone: deque[float] = deque()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float | None:
        """Seconds to wait before this client may try again, or None."""
        now = self.clock()
        with self._lock:
            waits = []
            for times, limit in (
                (self._failures.get(client), self.attempts),
                (self._everyone, self.attempts * GLOBAL_ATTEMPTS_FACTOR),
            ):
                if times is None:
                    continue
                while times and times[0] <= now - self.window:
                    times.popleft()
                if len(times) >= limit:
                    waits.append(times[0] + self.window - now)
            return max(waits) if waits else None

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            self._failures.setdefault(client, deque()).append(now)
            self._everyone.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class Auth:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.secrets = load_secrets(settings)
        self.clock = clock
        self.throttle = LoginThrottle(
            settings.review.login_attempts, float(settings.review.login_window), clock
        )
        self.secure_cookies = settings.server.base_url.startswith("https://")

    @property
    def login_enabled(self) -> bool:
        return self.secrets.password is not None

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.secrets.session_key, f"{purpose}|{value}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    # ------------------------------------------------------------ password login

    def check_name(self, name: str) -> str | None:
        """The reviewer's name as recorded, or None if it is not acceptable."""
        cleaned = " ".join(name.split())
        if not cleaned or len(cleaned) > MAX_NAME_CHARACTERS:
            return None
        allowed = self.settings.review.reviewers
        if allowed and cleaned not in allowed:
            return None
        return cleaned

    def check_password(self, given: str) -> bool:
        expected = self.secrets.password
        # Compare even when logins are disabled, so both paths cost the same.
        matches = same_secret(given, expected or secrets.token_hex(16))
        return matches and expected is not None

    def new_login_nonce(self) -> str:
        return secrets.token_urlsafe(18)

    def login_csrf(self, nonce: str) -> str:
        return self._sign("login", nonce)

    def check_login_csrf(self, nonce: str | None, submitted: str) -> bool:
        return bool(nonce) and same_secret(submitted, self.login_csrf(nonce or ""))

    # ------------------------------------------------------------ sessions

    def issue_session(self, name: str) -> str:
        payload = {
            "n": name,
            "i": secrets.token_urlsafe(12),
            "e": int(self.clock() + float(self.settings.review.session_lifetime)),
        }
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        return f"{body}.{self._sign('session', body)}"

    def session(self, cookie: str | None) -> Reviewer | None:
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not same_secret(signature, self._sign("session", body)):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            name, session_id, expires = str(payload["n"]), str(payload["i"]), int(payload["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= self.clock():
            return None
        return Reviewer(name=name, session_id=session_id)

    def csrf_token(self, reviewer: Reviewer) -> str:
        return self._sign("csrf", reviewer.session_id)

    def check_csrf(self, reviewer: Reviewer, submitted: str | None) -> bool:
        if reviewer.via_token:
            return True  # a bearer token is not sent by browsers on their own
        return bool(submitted) and same_secret(submitted or "", self.csrf_token(reviewer))

    def cookie_attributes(self, max_age: int) -> dict[str, object]:
        return {
            "max_age": max_age,
            "path": "/",
            "httponly": True,
            "samesite": "lax",
            "secure": self.secure_cookies,
        }

    # ------------------------------------------------------------ API tokens

    def token_reviewer(self, token: str | None) -> Reviewer | None:
        if not token:
            return None
        found = None
        for name, expected in self.secrets.tokens:
            # No early exit: the time taken does not say which token came close.
            if same_secret(token, expected):
                found = name
        return Reviewer(name=found, session_id="", via_token=True) if found else None
