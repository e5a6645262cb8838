"""Who may review: accounts or the shared password, server-side sessions, CSRF tokens,
login throttling and scoped API tokens.

Two ways to log in. With accounts (``aggregator users add``), each editor has a name and an
scrypt-hashed password in the database, and the audit trail and the credit name them. With
no account at all, the shared password (``[review] password_env`` / ``password_file``) and
a typed-in name still work, for one-person installs; the first account ends that mode.

Sessions live in the database: the cookie carries a random token (signed, so that garbage
costs no query) and the database its SHA-256, so logging out, a password change or a
disabled account ends a session everywhere at once, and a session unused for
``session_idle_timeout`` is over. A shared-password session also stores an HMAC of the
password it was opened with: change the password and restart, and every such session ends.

Failed logins are counted per (account, client) in the database, each attempt after
``login_attempts`` free ones waiting twice as long as the last (``login_delay``, capped at
``login_window``): one client's guesses never lock out anyone else, and a restart does not
reset the count. The client is the TCP peer unless ``[server] trusted_proxies`` names it.

API tokens come from ``[review] api_tokens_env`` / ``api_tokens_file`` as ``name:token`` or
``name:token:scope``, scope ``read`` or ``write`` (no scope: ``write``, as before). Only a
read token is accepted in a URL (the drafts feed's ``?token=``), and a read token never
changes anything. Secrets never come from config.toml itself; every comparison of a secret
runs in constant time over fixed-length digests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from aggregator.config import Settings
from aggregator.errors import AccountError, ConfigError
from aggregator.store.users import UserStore

SESSION_COOKIE = "aggregator_session"
LOGIN_COOKIE = "aggregator_login"
SECRET_FILE_NAME = "session-secret"  # noqa: S105 - a file name
MAX_NAME_CHARACTERS = 100
MIN_PASSWORD_CHARACTERS = 12
MIN_TOKEN_CHARACTERS = 16
SCOPES = ("read", "write")
ROLES = ("editor", "admin")
# last_seen_at is written at most this often per session: not one write per page view.
TOUCH_SECONDS = 60
# scrypt cost: 2**14 x 8 x 128 bytes = 16 MiB and ~50 ms a hash on a small box.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def _digest(value: str | bytes) -> bytes:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()


def same_secret(given: str, expected: str) -> bool:
    """Constant time whatever the lengths: both sides are hashed first."""
    return hmac.compare_digest(_digest(given), _digest(expected))


# ---------------------------------------------------------------- password hashes


def hash_password(password: str) -> str:
    """An scrypt hash with its parameters and salt: ``scrypt$N$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt).decode()}${encode(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(key)
        given = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, expected)


@cache
def _dummy_hash() -> str:
    """Checked against when the name is unknown, so the answer takes as long either way."""
    return hash_password(secrets.token_urlsafe(16))


def check_new_password(password: str, what: str = "a password") -> None:
    if len(password) < MIN_PASSWORD_CHARACTERS:
        raise AccountError(
            f"{what} must have at least {MIN_PASSWORD_CHARACTERS} characters "
            f"(got {len(password)}); a passphrase of a few words is easiest to type"
        )


def clean_name(name: str) -> str:
    """Whitespace collapsed, as the name is recorded."""
    return " ".join(name.split())


# ---------------------------------------------------------------- secrets


@dataclass(frozen=True)
class ApiToken:
    name: str
    token: str
    scope: str  # "read" | "write"


@dataclass(frozen=True)
class Secrets:
    password: str | None
    tokens: tuple[ApiToken, ...]
    session_key: bytes


def load_secrets(settings: Settings, *, session_key: bool = True) -> Secrets:
    """The shared password, the API tokens and (unless told not to) the session key; a
    password shorter than 12 characters or a malformed token is a ConfigError."""
    review = settings.review
    base = settings.path.parent
    password = os.environ.get(review.password_env, "") if review.password_env else ""
    where = f"${review.password_env}"
    if not password and review.password_file:
        password = _read_secret_file(base / review.password_file, "review.password_file")
        where = f"'review.password_file' ({base / review.password_file})"
    if password and len(password) < MIN_PASSWORD_CHARACTERS:
        raise ConfigError(
            f"the review password in {where} is too short ({len(password)} characters; use "
            f"at least {MIN_PASSWORD_CHARACTERS}, e.g. a passphrase of four words)"
        )
    tokens_text = os.environ.get(review.api_tokens_env, "") if review.api_tokens_env else ""
    if review.api_tokens_file:
        tokens_text += "\n" + _read_secret_file(
            base / review.api_tokens_file, "review.api_tokens_file"
        )
    return Secrets(
        password=password or None,
        tokens=parse_tokens(tokens_text),
        session_key=_session_key(settings) if session_key else b"",
    )


def _read_secret_file(path: Path, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"'{key}': cannot read {path}: {exc.strerror}") from None


def parse_tokens(text: str) -> tuple[ApiToken, ...]:
    """``name:token`` (a write token, as before scopes existed) or ``name:token:scope``,
    comma-separated or one per line; ``#`` starts a comment line."""
    tokens = []
    for raw in text.replace(",", "\n").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        scope = "write"
        head, separator, last = line.rpartition(":")
        if separator and last.strip() in SCOPES:
            # A scope: tokens are at least 16 characters, so "read" cannot be one.
            scope, line = last.strip(), head
        name, separator, token = line.rpartition(":")
        if not separator:
            name, token = "api", line
        name, token = name.strip() or "api", token.strip()
        if len(token) < MIN_TOKEN_CHARACTERS:
            raise ConfigError(
                f"API token for {name!r} is too short ({len(token)} characters; use at "
                f"least {MIN_TOKEN_CHARACTERS}, e.g. from `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe())'`)"
            )
        tokens.append(ApiToken(name, token, scope))
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


# ---------------------------------------------------------------- who is asking


@dataclass(frozen=True)
class Reviewer:
    name: str
    session_id: str  # the session's stored hash; "" for an API token
    via_token: bool = False
    scope: str = "write"  # what a token may do; a browser session may write
    role: str = "admin"  # an account's role; the shared password is a one-person install
    credited: bool = True  # a login or a token names a person: the credit line may name them


@dataclass(frozen=True)
class LoginOutcome:
    """A login attempt: a cookie and who it is, or a wait (throttled), or neither."""

    cookie: str | None = None
    reviewer: Reviewer | None = None
    wait: float | None = None


class Auth:
    def __init__(
        self,
        settings: Settings,
        store: UserStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.secrets = load_secrets(settings)
        self.clock = clock
        self.secure_cookies = settings.server.base_url.startswith("https://")
        review = settings.review
        self.free_attempts = review.login_attempts
        self.first_delay = float(review.login_delay)
        self.longest_delay = float(review.login_window)
        self.idle = timedelta(seconds=float(review.session_idle_timeout))
        self.lifetime = timedelta(seconds=float(review.session_lifetime))
        self._fingerprint = (
            self._sign("password", self.secrets.password) if self.secrets.password else None
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    @property
    def login_enabled(self) -> bool:
        return self.secrets.password is not None or self.store.has_users()

    @property
    def accounts(self) -> bool:
        """Per-user accounts exist: the shared password no longer opens the desk."""
        return self.store.has_users()

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.secrets.session_key, f"{purpose}|{value}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    # ------------------------------------------------------------ throttling

    def delay_after(self, failures: int) -> float:
        """Seconds the next attempt waits after ``failures`` in a row: none for the first
        few, then 1 s, 2 s, 4 s … up to ``login_window``."""
        if failures < self.free_attempts:
            return 0.0
        exponent = min(failures - self.free_attempts, 40)
        return float(min(self.first_delay * 2**exponent, self.longest_delay))

    # ------------------------------------------------------------ password login

    def check_name(self, name: str) -> str | None:
        """Shared-password mode: the name as recorded, or None if it is not acceptable."""
        cleaned = clean_name(name)
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

    def log_in(self, name: str, password: str, client: str) -> LoginOutcome:
        """Check a login (blocking: scrypt); a throttled attempt checks nothing at all."""
        accounts = self.store.has_users()
        typed = clean_name(name)
        # The shared password is one secret whatever name is typed: throttled per client.
        account = typed.casefold()[:200] if accounts else ""
        now = self._now()
        wait = self.store.reserve_login_attempt(account, client[:100], now, self.delay_after)
        if wait is not None:
            return LoginOutcome(wait=wait)
        reviewer: Reviewer | None = None
        user_id: int | None = None
        if accounts:
            user = self.store.find_user(typed) if typed else None
            matches = verify_password(password, user.password_hash if user else _dummy_hash())
            if user is not None and matches and user.disabled_at is None:
                reviewer = Reviewer(name=user.name, session_id="", role=user.role)
                user_id = user.id
        else:
            checked = self.check_name(name)
            if self.check_password(password) and checked is not None:
                reviewer = Reviewer(name=checked, session_id="")
        if reviewer is None:
            return LoginOutcome()
        self.store.clear_login_attempts(account, client[:100])
        token = secrets.token_urlsafe(32)
        id_hash = hashlib.sha256(token.encode()).hexdigest()
        self.store.open_session(
            id_hash,
            user_id=user_id,
            name=reviewer.name,
            fingerprint=None if accounts else self._fingerprint,
            now=now,
            expires_at=now + self.lifetime,
            idle=self.idle,
        )
        cookie = f"{token}.{self._sign('session', token)}"
        return LoginOutcome(cookie=cookie, reviewer=Reviewer(reviewer.name, id_hash))

    # ------------------------------------------------------------ sessions

    def _session_hash(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 200 or cookie.count(".") != 1:
            return None
        token, signature = cookie.split(".")
        if not same_secret(signature, self._sign("session", token)):
            return None
        return hashlib.sha256(token.encode()).hexdigest()

    def session(self, cookie: str | None) -> Reviewer | None:
        """The reviewer of a live session, or None (ended, expired, idle too long, opened
        with a password that is no longer the one, or whose account was disabled)."""
        id_hash = self._session_hash(cookie)
        if id_hash is None:
            return None
        found = self.store.find_session(id_hash)
        if found is None:
            return None
        now = self._now()
        if found.user_id is None:
            alive = (
                found.fingerprint is not None
                and self._fingerprint is not None
                and same_secret(found.fingerprint, self._fingerprint)
                and not found.accounts_exist
            )
        else:
            alive = found.user_active
        alive = alive and now < found.expires_at and now - found.last_seen_at < self.idle
        if not alive:
            self.store.end_session(id_hash)
            return None
        if (now - found.last_seen_at).total_seconds() > TOUCH_SECONDS:
            self.store.touch_session(id_hash, now)
        return Reviewer(name=found.name, session_id=id_hash, role=found.role or "admin")

    def end_session(self, cookie: str | None) -> None:
        id_hash = self._session_hash(cookie)
        if id_hash is not None:
            self.store.end_session(id_hash)

    def new_login_nonce(self) -> str:
        return secrets.token_urlsafe(18)

    def login_csrf(self, nonce: str) -> str:
        return self._sign("login", nonce)

    def check_login_csrf(self, nonce: str | None, submitted: str) -> bool:
        return bool(nonce) and same_secret(submitted, self.login_csrf(nonce or ""))

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

    def token_reviewer(self, token: str | None, *, in_url: bool = False) -> Reviewer | None:
        """The token's holder; ``in_url``: only a read token is acceptable there (a URL
        ends up in logs, histories and feed readers' exports)."""
        if not token:
            return None
        found: ApiToken | None = None
        for candidate in self.secrets.tokens:
            # No early exit: the time taken does not say which token came close.
            if same_secret(token, candidate.token):
                found = candidate
        if found is None or (in_url and found.scope != "read"):
            return None
        return Reviewer(name=found.name, session_id="", via_token=True, scope=found.scope)

    def is_write_token(self, token: str | None) -> bool:
        """For the message only: a write token was put where a read token belongs."""
        return bool(token) and any(
            same_secret(token or "", t.token) and t.scope == "write" for t in self.secrets.tokens
        )
