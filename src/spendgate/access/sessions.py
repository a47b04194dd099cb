"""The session cookie and CSRF tokens, shared by the admin API and the dashboard.

Sessions are kept server-side: the cookie carries a random session id (256 bits), signed with
the server's secret (``itsdangerous``); the ledger keeps only the id's SHA-256, the user, when
it began and when it was last used. So a session ends for real on logout, on a password
change, when its user is disabled or deleted, and after ``session_idle_timeout`` unused or
``session_max_age`` in all, on every replica at once (they share the ledger). The signature
lets a forged or mangled cookie be refused without a database read, and a copy of the ledger
holds no usable session (only hashes).

CSRF: a synchronizer token bound to the session, HMAC-SHA256(secret, session id), so it needs
no storage and cannot be computed without the cookie's session id. Every state-changing request
made with a session must carry it (a form field ``csrf_token``, or the header
``x-csrf-token``); requests authenticated by a personal token or the admin key carry no
cookie a browser could send on their behalf, and are exempt. The login form, which has no
session yet, is protected the same way by a signed nonce in a short-lived cookie of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, Signer

SESSION_COOKIE = "spendgate_session"
LOGIN_COOKIE = "spendgate_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
# The secret kept in the ledger when SPENDGATE_SECRET_KEY is unset (server_secrets.name).
SECRET_NAME = "session_signing"
# How long a login form stays usable.
LOGIN_FORM_MAX_AGE = 3600
_MAX_COOKIE = 512


@dataclass(frozen=True)
class SessionPolicy:
    idle_timeout: timedelta
    max_age: timedelta
    secure: bool  # behind https: the cookie is Secure (and __Host- prefixed)

    @property
    def cookie_name(self) -> str:
        # __Host-: the browser accepts it only Secure, from an https origin, for path /, with no
        # Domain, so a sibling subdomain cannot plant or overwrite it.
        return f"__Host-{SESSION_COOKIE}" if self.secure else SESSION_COOKIE

    @property
    def login_cookie_name(self) -> str:
        return f"__Host-{LOGIN_COOKIE}" if self.secure else LOGIN_COOKIE

    def cookie_options(self) -> dict[str, Any]:
        """How the session cookie is set (Starlette's ``set_cookie`` arguments)."""
        return {
            "max_age": int(self.max_age.total_seconds()),
            "path": "/",
            "secure": self.secure,
            "httponly": True,
            "samesite": "lax",
        }

    def login_cookie_options(self) -> dict[str, Any]:
        return {**self.cookie_options(), "max_age": LOGIN_FORM_MAX_AGE}

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime]:
        """(idle, absolute): a session last used before the first, or begun before the
        second, has expired."""
        return now - self.idle_timeout, now - self.max_age


class SessionKeys:
    """Signing and CSRF, keyed by the server's secret (each use under a key of its own)."""

    def __init__(self, secret: str) -> None:
        master = secret.encode()
        self._signer = Signer(master, salt="spendgate.session-cookie", digest_method=hashlib.sha256)
        self._csrf_key = hmac.new(master, b"spendgate.csrf", hashlib.sha256).digest()

    def sign(self, session_id: str) -> str:
        return self._signer.sign(session_id).decode()

    def unsign(self, cookie: str | None) -> str | None:
        """The session id a cookie carries, or None when it is absent, too long or not signed by us."""
        if not cookie or len(cookie) > _MAX_COOKIE:
            return None
        try:
            return self._signer.unsign(cookie).decode()
        except (BadSignature, UnicodeError):
            return None

    def csrf_token(self, bound_to: str, purpose: str = "session") -> str:
        """The CSRF token of a session id (or, ``purpose="login"``, of a login form's nonce)."""
        message = f"{purpose}:{bound_to}".encode()
        return hmac.new(self._csrf_key, message, hashlib.sha256).hexdigest()

    def csrf_ok(self, bound_to: str | None, token: str | None, purpose: str = "session") -> bool:
        if not bound_to or not token:
            return False
        return hmac.compare_digest(self.csrf_token(bound_to, purpose).encode(), token.encode("utf-8", "replace"))


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def new_server_secret() -> str:
    return secrets.token_hex(32)
