"""Logins, sessions and personal tokens over the ledger: who a request is, as a ``Viewer``.

Used by the admin API and the dashboard alike. Every method reads or writes the database and
verifying a password takes tens of milliseconds: call them in a thread, off the event loop.
Nothing here is on the gateway's request path (/v1/…).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from spendgate.access import throttle
from spendgate.access.model import Grant, User, Viewer
from spendgate.access.passwords import Passwords
from spendgate.access.sessions import SECRET_NAME, SessionKeys, SessionPolicy, new_server_secret
from spendgate.access.tokens import is_token, new_session_id, secret_hash
from spendgate.attribution.model import Project

# last_seen_at / last_used_at are written at most this often per session or token, so that a
# page's many requests do not each cost a write.
TOUCH_EVERY = timedelta(seconds=60)
_MAX_NAME = 64


class UserStore(Protocol):
    """What the authenticator needs of the store (``ledger/store/users.py``)."""

    def user_and_password_hash(self, name: str) -> tuple[User, str] | None: ...
    def rehash_password(self, name: str, old_hash: str, new_hash: str) -> None: ...
    def list_grants(
        self, user: str | None = None, *, kind: str | None = None, name: str | None = None
    ) -> list[Grant]: ...
    def list_projects(self, names: Any = None) -> list[Project]: ...
    def create_session(self, id_hash: str, user: str, now: datetime) -> None: ...
    def session_user(
        self, id_hash: str, idle_cutoff: datetime, absolute_cutoff: datetime
    ) -> tuple[User, datetime] | None: ...
    def touch_session(self, id_hash: str, now: datetime) -> None: ...
    def delete_session(self, id_hash: str) -> None: ...
    def delete_expired_sessions(self, idle_cutoff: datetime, absolute_cutoff: datetime) -> int: ...
    def token_user(self, token_hash: str) -> tuple[User, datetime | None] | None: ...
    def touch_token(self, token_hash: str, now: datetime) -> None: ...
    def login_failures(self, subjects: Iterable[tuple[str, str]]) -> list[tuple[int, datetime]]: ...
    def record_login_failure(
        self, subjects: Iterable[tuple[str, str]], now: datetime, forget_before: datetime
    ) -> None: ...
    def clear_login_failures(self, kind: str, subject: str) -> None: ...
    def server_secret(self, name: str, make: Callable[[], str]) -> str: ...


@dataclass(frozen=True)
class LoginOutcome:
    """A login's result: a session (``cookie``: the signed session id to set), a refusal, or
    ``retry_after`` seconds to wait (throttled: the password was not even checked)."""

    cookie: str | None = None
    viewer: Viewer | None = None
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.cookie is not None


@dataclass(frozen=True)
class Session:
    """A live session: who it is, its id (what the cookie carries) and its CSRF token."""

    viewer: Viewer
    session_id: str
    csrf_token: str


class Authenticator:
    def __init__(
        self,
        store: UserStore,
        policy: SessionPolicy,
        *,
        clock: Callable[[], datetime],
        secret_key: str | None = None,
        passwords: Passwords | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.passwords = passwords or Passwords()
        self._secret_key = secret_key
        self._keys: SessionKeys | None = None

    @property
    def keys(self) -> SessionKeys:
        """The signing keys: from SPENDGATE_SECRET_KEY, else the secret kept in the ledger
        (made by the first replica that needed it), so every replica signs alike."""
        if self._keys is None:
            secret = self._secret_key or self.store.server_secret(SECRET_NAME, new_server_secret)
            self._keys = SessionKeys(secret)
        return self._keys

    # --- logging in and out ----------------------------------------------------------------------
    def login(self, username: str, password: str, client: str | None) -> LoginOutcome:
        now = self.clock()
        subjects = [("user", throttle.subject(username)), ("ip", throttle.subject(client or "unknown"))]
        wait = throttle.wait_seconds(self.store.login_failures(subjects), now)
        if wait:
            return LoginOutcome(retry_after=wait)
        found = self.store.user_and_password_hash(username) if 0 < len(username) <= _MAX_NAME else None
        if found is None:
            self.passwords.waste_time(password)
            ok = False
        else:
            user, password_hash = found
            ok = self.passwords.verify(password_hash, password) and not user.disabled
        if not ok:
            self.store.record_login_failure(subjects, now, now - throttle.FORGET_AFTER)
            return LoginOutcome()
        self.store.clear_login_failures("user", subjects[0][1])
        if self.passwords.needs_rehash(password_hash):
            self.store.rehash_password(user.name, password_hash, self.passwords.hash(password))
        session_id = new_session_id()
        self.store.create_session(secret_hash(session_id), user.name, now)
        self.store.delete_expired_sessions(*self.policy.cutoffs(now))  # keeps the table small
        return LoginOutcome(cookie=self.keys.sign(session_id), viewer=self.viewer_of(user))

    def logout(self, cookie: str | None) -> None:
        session_id = self.keys.unsign(cookie)
        if session_id is not None:
            self.store.delete_session(secret_hash(session_id))

    # --- who a request is --------------------------------------------------------------------------
    def session(self, cookie: str | None) -> Session | None:
        """The live session a cookie carries, or None (absent, forged, expired, logged out,
        its user disabled or deleted). Using a session keeps it from going idle."""
        session_id = self.keys.unsign(cookie)
        if session_id is None:
            return None
        now = self.clock()
        idle_cutoff, absolute_cutoff = self.policy.cutoffs(now)
        id_hash = secret_hash(session_id)
        found = self.store.session_user(id_hash, idle_cutoff, absolute_cutoff)
        if found is None:
            return None
        user, last_seen = found
        if now - last_seen >= min(TOUCH_EVERY, self.policy.idle_timeout / 4):
            self.store.touch_session(id_hash, now)
        return Session(self.viewer_of(user), session_id, self.keys.csrf_token(session_id))

    def token_viewer(self, secret: str | None) -> Viewer | None:
        """The viewer of a personal token (``sgu-…``), or None (unknown, revoked, user disabled)."""
        if not secret or not is_token(secret) or len(secret) > 256:
            return None
        token_hash = secret_hash(secret)
        found = self.store.token_user(token_hash)
        if found is None:
            return None
        user, last_used = found
        now = self.clock()
        if last_used is None or now - last_used >= TOUCH_EVERY:
            self.store.touch_token(token_hash, now)
        return self.viewer_of(user)

    def viewer_of(self, user: User) -> Viewer:
        """A user's viewer from their current grants and the current projects."""
        if user.is_admin:
            return Viewer.of_user(user, (), ())
        return Viewer.of_user(user, self.store.list_grants(user.name), self.store.list_projects())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return self.keys.csrf_ok(session.session_id, token)
