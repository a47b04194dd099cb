"""The admin API's routes for users, roles and personal tokens.

GET  /admin/me                         who the caller is, and what it sees and manages
GET  /admin/users                      POST /admin/users {"name", "password", "admin"?}   (org admins)
DELETE /admin/users/NAME               POST /admin/users/NAME/disable | /enable           (org admins)
POST /admin/users/NAME/password        {"password", "current_password"?}: an admin, or the user
GET  /admin/grants?project=P|team=T|user=U
POST /admin/grants                     {"user", "project" | "team", "role": "viewer" | "manager"}
POST /admin/grants/revoke              {"user", "project" | "team"}
GET  /admin/tokens                     POST /admin/tokens {"name"} (the secret once)
POST /admin/tokens/NAME/revoke         the caller's own tokens
"""

from __future__ import annotations

import asyncio
from typing import Any

from spendgate.access import accounts
from spendgate.access.authenticator import Authenticator
from spendgate.access.model import GRANT_KINDS, Viewer
from spendgate.gateway import admin_access as access
from spendgate.gateway.admin_routing import AdminRequest, Route, route
from spendgate.gateway.errors import invalid_request
from spendgate.ledger.store import Store


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_request(f"{name!r} is required (a string)")
    return value


def _target(body: dict[str, Any]) -> tuple[str, str]:
    """The project or team a grant is about: exactly one of them."""
    given = [(kind, body[kind]) for kind in GRANT_KINDS if body.get(kind) is not None]
    if len(given) != 1 or not isinstance(given[0][1], str):
        raise invalid_request("name exactly one of 'project' or 'team'")
    return given[0]


def _require_grant_rights(viewer: Viewer, kind: str, name: str) -> None:
    if not viewer.sees_grant_target(kind, name):
        raise access.unknown(kind, name)
    if not viewer.may_grant(kind, name):
        raise access.permission_denied(f"only managers of {kind} {name!r} may manage its members")


def user_routes(store: Store, authenticator: Authenticator) -> list[Route]:
    users: Any = store  # the store's users part (ledger/store/users.py)
    passwords = authenticator.passwords

    async def me(request: AdminRequest) -> tuple[int, Any]:
        body: dict[str, Any] = request.viewer.as_json()
        if request.caller.session is not None:
            body["csrf_token"] = request.caller.session.csrf_token
        return 200, body

    async def list_users(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "listing users")

        def read() -> list[dict[str, Any]]:
            grants = users.list_grants()
            return [accounts.user_as_json(u, [g for g in grants if g.user == u.name]) for u in users.list_users()]

        return 200, await asyncio.to_thread(read)

    async def create_user(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "creating a user")
        body = await request.json()
        name, password = _text(body, "name"), _text(body, "password")
        user = await asyncio.to_thread(
            accounts.create_user, users, passwords, name, password, admin=bool(body.get("admin"))
        )
        return 201, accounts.user_as_json(user, [])

    async def delete_user(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "deleting a user")
        return 200, accounts.user_as_json(await asyncio.to_thread(users.delete_user, request.name))

    async def disable_user(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "disabling a user")
        return 201, accounts.user_as_json(await asyncio.to_thread(users.set_user_disabled, request.name, True))

    async def enable_user(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "enabling a user")
        return 201, accounts.user_as_json(await asyncio.to_thread(users.set_user_disabled, request.name, False))

    async def set_password(request: AdminRequest) -> tuple[int, Any]:
        viewer, name = request.viewer, request.name
        body = await request.json()
        password = _text(body, "password")
        if not viewer.is_admin:
            if viewer.name != name:
                raise access.permission_denied("only org admins may set another user's password")
            current = body.get("current_password")
            found = await asyncio.to_thread(users.user_and_password_hash, name)
            ok = isinstance(current, str) and found is not None
            if ok:
                ok = await asyncio.to_thread(passwords.verify, found[1], current)
            if not ok:
                raise access.permission_denied("changing your password needs your current one in 'current_password'")
        user = await asyncio.to_thread(accounts.set_password, users, passwords, name, password)
        return 201, accounts.user_as_json(user)

    async def list_grants(request: AdminRequest) -> tuple[int, Any]:
        viewer, query = request.viewer, request.query
        if len(query) > 1:
            raise invalid_request("filter by one of project, team or user")
        if "user" in query:
            if not viewer.is_admin and query["user"] != viewer.name:
                raise access.permission_denied("only org admins may list another user's roles")
            found = await asyncio.to_thread(users.list_grants, query["user"])
        elif "project" in query or "team" in query:
            kind = "project" if "project" in query else "team"
            _require_grant_rights(viewer, kind, query[kind])
            found = await asyncio.to_thread(lambda: users.list_grants(kind=kind, name=query[kind]))
        elif viewer.is_admin:
            found = await asyncio.to_thread(users.list_grants)
        else:
            found = await asyncio.to_thread(users.list_grants, viewer.name)
        return 200, [accounts.grant_as_json(g) for g in found]

    async def grant(request: AdminRequest) -> tuple[int, Any]:
        body = await request.json()
        kind, name = _target(body)
        _require_grant_rights(request.viewer, kind, name)
        user, role = _text(body, "user"), _text(body, "role")
        made = await asyncio.to_thread(accounts.grant, users, user, kind, name, role)
        return 201, accounts.grant_as_json(made)

    async def revoke(request: AdminRequest) -> tuple[int, Any]:
        body = await request.json()
        kind, name = _target(body)
        _require_grant_rights(request.viewer, kind, name)
        removed = await asyncio.to_thread(users.revoke_grant, _text(body, "user"), kind, name)
        return 201, accounts.grant_as_json(removed)

    async def list_tokens(request: AdminRequest) -> tuple[int, Any]:
        return 200, await asyncio.to_thread(users.list_tokens, access.require_user(request.viewer))

    async def create_token(request: AdminRequest) -> tuple[int, Any]:
        user = access.require_user(request.viewer)
        name = _text(await request.json(), "name")
        made = await asyncio.to_thread(accounts.create_token, users, user, name)
        return 201, made.as_json()

    async def revoke_token(request: AdminRequest) -> tuple[int, Any]:
        user = access.require_user(request.viewer)
        return 201, await asyncio.to_thread(users.revoke_token, user, request.name)

    return [
        route("GET", "/admin/me", me),
        route("GET", "/admin/users", list_users),
        route("POST", "/admin/users", create_user),
        route("DELETE", "/admin/users/{name}", delete_user),
        route("POST", "/admin/users/{name}/disable", disable_user),
        route("POST", "/admin/users/{name}/enable", enable_user),
        route("POST", "/admin/users/{name}/password", set_password),
        route("GET", "/admin/grants", list_grants, ("project", "team", "user")),
        route("POST", "/admin/grants/revoke", revoke),
        route("POST", "/admin/grants", grant),
        route("GET", "/admin/tokens", list_tokens),
        route("POST", "/admin/tokens", create_token),
        route("POST", "/admin/tokens/{name}/revoke", revoke_token),
    ]
