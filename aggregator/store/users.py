"""Accounts, browser sessions and login throttling counters.

Everything here is what makes logins revocable and throttling durable across restarts and
processes: a session is a row (deleting it ends the session for every process at once),
and the count of failed logins of an account from a client is a row too. Hashing and the
decisions (is this session alive, how long must a client wait) belong to ``auth``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from aggregator.errors import AccountError
from aggregator.models import BrowserSession, LoginAttempt, User
from aggregator.store.base import StoreBase, insert_for, view_of

# Throttling counters not touched for this long are forgotten.
FORGET_ATTEMPTS_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class UserView:
    id: int
    name: str
    role: str
    password_hash: str
    created_at: datetime
    password_changed_at: datetime
    disabled_at: datetime | None
    last_login_at: datetime | None
    sessions: int = 0


@dataclass(frozen=True)
class SessionView:
    name: str
    user_id: int | None
    role: str | None
    user_active: bool  # an account that exists and is not disabled
    accounts_exist: bool  # whether any account exists (ends shared-password sessions)
    fingerprint: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _user_view(user: User, sessions: int = 0) -> UserView:
    return view_of(UserView, user, sessions=sessions)


class UserStore(StoreBase):
    # ------------------------------------------------------------ accounts

    def has_users(self) -> bool:
        with self.session() as session:
            return bool(session.scalar(select(exists().where(User.id.is_not(None)))))

    def _user(self, session: Session, name: str) -> User:
        user = session.scalar(select(User).where(User.name_key == name.casefold()))
        if user is None:
            raise AccountError(f"no user named {name!r} (see `aggregator users list`)")
        return user

    def find_user(self, name: str) -> UserView | None:
        with self.session() as session:
            user = session.scalar(select(User).where(User.name_key == name.casefold()))
            return _user_view(user) if user is not None else None

    def add_user(self, name: str, password_hash: str, role: str, now: datetime) -> UserView:
        with self.session() as session:
            taken = session.scalar(select(User).where(User.name_key == name.casefold()))
            if taken is not None:
                raise AccountError(f"a user named {taken.name!r} already exists")
            user = User(
                name=name,
                name_key=name.casefold(),
                password_hash=password_hash,
                role=role,
                created_at=now,
                password_changed_at=now,
            )
            session.add(user)
            session.flush()
            return _user_view(user)

    def set_password(self, name: str, password_hash: str, now: datetime) -> int:
        """A new password; every session of the user ends. Returns how many did."""
        with self.session() as session:
            user = self._user(session, name)
            user.password_hash = password_hash
            user.password_changed_at = now
            return self._end_sessions_of(session, user.id)

    def disable_user(self, name: str, now: datetime) -> int:
        """The user can no longer log in; every session of theirs ends. Returns how many."""
        with self.session() as session:
            user = self._user(session, name)
            if user.disabled_at is None:
                user.disabled_at = now
            return self._end_sessions_of(session, user.id)

    def enable_user(self, name: str) -> UserView:
        with self.session() as session:
            user = self._user(session, name)
            user.disabled_at = None
            return _user_view(user)

    def list_users(self) -> list[UserView]:
        with self.session() as session:
            counts = dict(
                session.execute(
                    select(BrowserSession.user_id, func.count())
                    .where(BrowserSession.user_id.is_not(None))
                    .group_by(BrowserSession.user_id)
                ).all()
            )
            users = session.scalars(select(User).order_by(User.name_key))
            return [_user_view(u, counts.get(u.id, 0)) for u in users]

    @staticmethod
    def _end_sessions_of(session: Session, user_id: int) -> int:
        result = session.execute(delete(BrowserSession).where(BrowserSession.user_id == user_id))
        return int(getattr(result, "rowcount", 0) or 0)

    # ------------------------------------------------------------ sessions

    def open_session(
        self,
        id_hash: str,
        *,
        user_id: int | None,
        name: str,
        fingerprint: str | None,
        now: datetime,
        expires_at: datetime,
        idle: timedelta,
    ) -> None:
        with self.session() as session:
            # Sessions nobody will use again: expired, or idle past the timeout.
            session.execute(
                delete(BrowserSession).where(
                    or_(BrowserSession.expires_at <= now, BrowserSession.last_seen_at <= now - idle)
                )
            )
            session.add(
                BrowserSession(
                    id_hash=id_hash,
                    user_id=user_id,
                    name=name,
                    password_fingerprint=fingerprint,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires_at,
                )
            )
            if user_id is not None:
                session.execute(update(User).where(User.id == user_id).values(last_login_at=now))

    def find_session(self, id_hash: str) -> SessionView | None:
        with self.session() as session:
            row = session.execute(
                select(BrowserSession, User)
                .outerjoin(User, User.id == BrowserSession.user_id)
                .where(BrowserSession.id_hash == id_hash)
            ).first()
            if row is None:
                return None
            found, user = row
            accounts = bool(session.scalar(select(exists().where(User.id.is_not(None)))))
            return SessionView(
                name=user.name if user is not None else found.name,
                user_id=found.user_id,
                role=user.role if user is not None else None,
                user_active=user is not None and user.disabled_at is None,
                accounts_exist=accounts,
                fingerprint=found.password_fingerprint,
                created_at=found.created_at,
                last_seen_at=found.last_seen_at,
                expires_at=found.expires_at,
            )

    def touch_session(self, id_hash: str, now: datetime) -> None:
        with self.session() as session:
            session.execute(
                update(BrowserSession)
                .where(BrowserSession.id_hash == id_hash)
                .values(last_seen_at=now)
            )

    def end_session(self, id_hash: str) -> None:
        with self.session() as session:
            session.execute(delete(BrowserSession).where(BrowserSession.id_hash == id_hash))

    # ------------------------------------------------------------ throttling

    def reserve_login_attempt(
        self, account: str, client: str, now: datetime, delay_after: Callable[[int], float]
    ) -> float | None:
        """Count an attempt before its password is checked, or say how many seconds to
        wait. Counting first (a compare-and-set on ``failures``) means concurrent guesses
        cannot all slip through before the first failure is written; a login that
        succeeds clears the count (``clear_login_attempts``)."""
        with self.session() as session:
            session.execute(
                delete(LoginAttempt).where(
                    LoginAttempt.last_attempt_at < now - FORGET_ATTEMPTS_AFTER,
                    LoginAttempt.next_allowed_at <= now,
                )
            )
            row = session.get(LoginAttempt, (account, client))
            if row is None:
                inserted = session.execute(
                    insert_for(self.engine.dialect.name)(LoginAttempt)
                    .values(
                        account=account,
                        client=client,
                        failures=1,
                        next_allowed_at=now + timedelta(seconds=delay_after(1)),
                        last_attempt_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(LoginAttempt.failures)
                ).first()
                # Nothing inserted: another attempt was counted in between; this one waits.
                return None if inserted is not None else 1.0
            if row.next_allowed_at > now:
                return max(1.0, (row.next_allowed_at - now).total_seconds())
            seen = row.failures
            counted = session.execute(
                update(LoginAttempt)
                .where(
                    LoginAttempt.account == account,
                    LoginAttempt.client == client,
                    LoginAttempt.failures == seen,
                )
                .values(
                    failures=seen + 1,
                    next_allowed_at=now + timedelta(seconds=delay_after(seen + 1)),
                    last_attempt_at=now,
                )
                .returning(LoginAttempt.failures)
                .execution_options(synchronize_session=False)
            ).first()
            # Another attempt was counted in between: this one waits its turn.
            return None if counted is not None else 1.0

    def clear_login_attempts(self, account: str, client: str) -> None:
        with self.session() as session:
            session.execute(
                delete(LoginAttempt).where(
                    LoginAttempt.account == account, LoginAttempt.client == client
                )
            )

    def login_failures(self, account: str, client: str) -> int:
        with self.session() as session:
            row = session.get(LoginAttempt, (account, client))
            return row.failures if row is not None else 0
