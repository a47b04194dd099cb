"""Who calls the admin API, and what that caller may do there.

A caller is one of:

- the admin key (``Authorization: Bearer <SPENDGATE_ADMIN_KEY>``): the break-glass superuser;
- a user's personal token (``Authorization: Bearer sgu-…``);
- a user's dashboard session (its cookie); a request that changes something must then also
  carry the session's CSRF token in ``x-csrf-token`` (a token or the admin key needs none: no
  browser sends those on its own).

Every route applies the caller's ``Viewer``: reads are scoped in the store (``visible=``), and
a project, team or key the caller may not see is a 404 with the message a name that does not
exist gets, so names do not leak; one it may see but not change is a 403 ``permission_error``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import cookie_parser

from spendgate.access.authenticator import Authenticator, Session
from spendgate.access.model import Viewer
from spendgate.access.sessions import CSRF_HEADER
from spendgate.access.tokens import is_token
from spendgate.attribution.model import GatewayKey
from spendgate.budgets.model import Scope
from spendgate.gateway.errors import GatewayError, authentication_error, permission_denied

_SAFE_METHODS = ("GET", "HEAD")


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (scheme in any case), or None."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def admin_key_matches(given: str | None, admin_key: str) -> bool:
    # Digests are compared, so the time taken says nothing of the key's length either.
    digest = hashlib.sha256((given or "").encode()).digest()
    return given is not None and hmac.compare_digest(digest, hashlib.sha256(admin_key.encode()).digest())


@dataclass(frozen=True)
class Caller:
    viewer: Viewer
    session: Session | None = None  # when authenticated by a session cookie: CSRF applies


def unknown(kind: str, name: str | None) -> GatewayError:
    """What a caller gets for a project, team, key or user it may not see: the same as for one
    that does not exist."""
    return GatewayError(404, "not_found_error", f"unknown {kind} {name!r}")


async def identify(
    method: str, headers: Mapping[str, str], admin_key: str | None, authenticator: Authenticator
) -> Caller:
    """The caller of an admin API request, or the 401/403 that refuses it."""
    authorization = headers.get("authorization")
    if authorization is not None:
        token = bearer_token(authorization)
        if token is not None and is_token(token):
            viewer = await asyncio.to_thread(authenticator.token_viewer, token)
            if viewer is None:
                raise authentication_error("admin API: unknown or revoked personal token (or its user is disabled)")
            return Caller(viewer)
        if not admin_key:
            raise _off()
        if not admin_key_matches(token, admin_key):
            raise authentication_error("admin API: wrong or missing 'Authorization: Bearer <SPENDGATE_ADMIN_KEY>'")
        return Caller(Viewer.superuser())
    cookie = _cookie(headers, authenticator.policy.cookie_name)
    if cookie is None:
        if not admin_key:
            raise _off()
        raise authentication_error(
            "admin API: send 'Authorization: Bearer <SPENDGATE_ADMIN_KEY>' or a personal token (sgu-…),"
            " or log in at /ui/login"
        )
    session = await asyncio.to_thread(authenticator.session, cookie)
    if session is None:
        raise authentication_error("admin API: the session has ended; log in again at /ui/login")
    if method not in _SAFE_METHODS and not authenticator.csrf_ok(session, headers.get(CSRF_HEADER)):
        raise permission_denied(f"a change made with a session needs its CSRF token in {CSRF_HEADER}")
    return Caller(session.viewer, session)


def _off() -> GatewayError:
    return permission_denied(
        "the admin API is off: set SPENDGATE_ADMIN_KEY to turn it on, or use a user's personal token or session"
    )


def _cookie(headers: Mapping[str, str], name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw or len(raw) > 8192:
        return None
    return cookie_parser(raw).get(name) or None


# --- what a caller may do ---------------------------------------------------------------------------
def require_admin(viewer: Viewer, what: str) -> None:
    if not viewer.is_admin:
        raise permission_denied(f"{what} is for org admins")


def require_user(viewer: Viewer) -> str:
    if viewer.name is None:
        raise GatewayError(
            400,
            "invalid_request_error",
            "the admin key is not a user: use a user's token or session, or `spendgate users tokens …`",
        )
    return viewer.name


def require_project(viewer: Viewer, name: str | None, *, manage: bool) -> None:
    """The caller sees the project (else 404) and, with ``manage``, manages it (else 403)."""
    if not viewer.sees_project(name):
        raise unknown("project", name)
    if manage and not viewer.manages_project(name):
        raise permission_denied(f"only managers of project {name!r} may change it")


def require_team(viewer: Viewer, name: str | None, *, manage: bool) -> None:
    if not viewer.sees_team(name):
        raise unknown("team", name)
    if manage and not viewer.manages_team(name):
        raise permission_denied(f"only managers of team {name!r} may change it")


def require_key(viewer: Viewer, key: GatewayKey | None, name: str) -> GatewayKey:
    """A key the caller manages (its project's managers): unseen keys are a 404."""
    if key is None or not viewer.sees_key(key):
        raise unknown("key", name)
    if not viewer.manages_project(key.project):
        raise permission_denied(f"only managers of project {key.project!r} may change its keys")
    return key


def require_scope(viewer: Viewer, scope: Scope, keys: Mapping[str, GatewayKey]) -> None:
    """The caller may put a budget on ``scope``: managers on their project or team (or a key
    locked to their project); org, customer, feature and tag budgets span projects, so only
    admins may."""
    if viewer.is_admin:
        return
    if scope.kind == "project":
        require_project(viewer, scope.value, manage=True)
    elif scope.kind == "team":
        require_team(viewer, scope.value, manage=True)
    elif scope.kind == "key":
        key = keys.get(scope.value or "")
        if key is None or not viewer.sees_key(key):
            raise unknown("key", scope.value)
        if not viewer.manages_scope(scope, keys):
            raise permission_denied(f"a budget on key {key.name!r} needs the key locked to a project you manage")
    else:
        raise permission_denied(f"{scope.kind} budgets span projects: they are for org admins")
