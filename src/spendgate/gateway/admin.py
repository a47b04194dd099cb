"""The admin API: the CLI's management commands over HTTP.

GET  /admin/teams                      POST /admin/teams     {"name", "cost_center"?}
GET  /admin/projects                   POST /admin/projects  {"name", "team"}
GET  /admin/projects/NAME
GET  /admin/keys                       POST /admin/keys      {"name", "project"?, "lock"?, "environment"?,
                                                              "team"?, "allow_projects"?, "org_wide"?}
POST /admin/keys/NAME/revoke
POST /admin/keys/NAME/update           {"team"? (null: none), "allow_projects"?, "disallow_projects"?, "org_wide"?}
GET  /admin/report?by=team,project&since=YYYY-MM-DD&until=YYYY-MM-DD&where=DIM=VALUE (where: repeatable)
GET  /admin/events?limit=N             (1 to 10,000; default 50)
GET  /admin/budgets                    POST /admin/budgets   {"scope", "limit_usd", …}
and users, grants and personal tokens (``admin_users.py``).

Callers: the admin key, a user's personal token or a user's session (``admin_access.py``);
every route applies the caller's visibility and rights. Query parameters are checked: an
unknown, repeated or out-of-range one is a 400, never a silent default.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import orjson

from spendgate import management
from spendgate.access.authenticator import Authenticator
from spendgate.budgets.model import BudgetError, budget_from_request
from spendgate.gateway import admin_access as access
from spendgate.gateway.admin_access import Caller
from spendgate.gateway.admin_anomalies import anomaly_routes
from spendgate.gateway.admin_routing import AdminRequest, query_parameters, route
from spendgate.gateway.admin_users import user_routes
from spendgate.gateway.asgi import JSON_HEADERS, Receive, Scope, Send, request_headers, send_response
from spendgate.gateway.errors import OPENAI, GatewayError, invalid_request, not_found
from spendgate.ledger.store import Store, StoreError
from spendgate.money import format_usd
from spendgate.reports.spec import ReportError, ReportQuery, parse_dimensions, parse_where

DEFAULT_EVENTS_LIMIT = 50
MAX_NAMES = 1000  # projects in one allow or disallow list
MAX_EVENTS_LIMIT = 10_000
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def events_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_EVENTS_LIMIT
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or not 1 <= int(text) <= MAX_EVENTS_LIMIT:
        raise invalid_request(f"limit must be a whole number from 1 to {MAX_EVENTS_LIMIT:,}, got {text[:32]!r}")
    return int(text)


def report_day(name: str, text: str | None) -> date | None:
    if not text:
        return None
    try:
        if not _DAY.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise invalid_request(f"{name} must be a day, YYYY-MM-DD, got {text[:32]!r}") from exc


def _text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise invalid_request(f"{field} must be a string")
    return value


def _names(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field, [])
    if not isinstance(value, list) or len(value) > MAX_NAMES or not all(isinstance(v, str) for v in value):
        raise invalid_request(f"{field} must be a list of at most {MAX_NAMES} project names")
    return value


def _flag(body: dict[str, Any], field: str) -> bool | None:
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise invalid_request(f"{field} must be true or false")
    return value


class AdminAPI:
    def __init__(
        self,
        store: Store,
        admin_key: str | None,
        on_change: Callable[[], Awaitable[None]],
        budget_statuses: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
        *,
        authenticator: Authenticator,
    ) -> None:
        self.store = store
        self.admin_key = admin_key
        self.on_change = on_change
        # The live view (this gateway's in-flight reservations included), from the enforcer.
        self.budget_statuses = budget_statuses
        self.authenticator = authenticator
        self.routes = [
            route("GET", "/admin/teams", self.list_teams),
            route("POST", "/admin/teams", self.create_team, changes_config=True),
            route("GET", "/admin/projects", self.list_projects),
            route("POST", "/admin/projects", self.create_project, changes_config=True),
            route("GET", "/admin/projects/{name}", self.show_project),
            route("GET", "/admin/keys", self.list_keys),
            route("POST", "/admin/keys", self.create_key, changes_config=True),
            route("POST", "/admin/keys/{name}/revoke", self.revoke_key, changes_config=True),
            route("POST", "/admin/keys/{name}/update", self.update_key, changes_config=True),
            route("GET", "/admin/events", self.events, ("limit",)),
            route("GET", "/admin/report", self.report, ("by", "since", "until", "where"), repeated=("where",)),
            route("GET", "/admin/budgets", self.list_budgets),
            route("POST", "/admin/budgets", self.create_budget, changes_config=True),
            *user_routes(store, authenticator),
            *anomaly_routes(store),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = request_headers(scope)
            method, path = scope["method"], scope["path"].rstrip("/")
            caller = await access.identify(method, headers, self.admin_key, self.authenticator)
            status, payload = await self._dispatch(method, path, scope, receive, headers, caller)
        except GatewayError as error:
            await send_response(send, error.status, JSON_HEADERS, error.body(OPENAI))
            return
        await send_response(send, status, JSON_HEADERS, orjson.dumps(payload))

    async def _dispatch(
        self, method: str, path: str, scope: Scope, receive: Receive, headers: dict[str, str], caller: Caller
    ) -> tuple[int, Any]:
        for candidate in self.routes:
            match = candidate.pattern.match(path)
            if match is None or candidate.method != method:
                continue
            query, lists = query_parameters(path, scope.get("query_string", b""), candidate.query, candidate.repeated)
            request = AdminRequest(caller, path, match.groupdict().get("name", ""), query, receive, headers, lists)
            try:
                result = await candidate.handler(request)
            except (StoreError, ReportError, BudgetError, ValueError) as exc:
                raise invalid_request(str(exc)) from exc
            if candidate.changes_config:
                await self.on_change()
            return result
        raise not_found(path)

    # --- teams and projects ------------------------------------------------------------------------
    async def list_teams(self, request: AdminRequest) -> tuple[int, Any]:
        teams = await asyncio.to_thread(self.store.list_teams, request.viewer.visible_teams())
        return 200, [management.team_as_json(t) for t in teams]

    async def create_team(self, request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "creating a team")
        body = await request.json()
        team = await asyncio.to_thread(
            management.create_team, self.store, body.get("name", ""), body.get("cost_center")
        )
        return 201, management.team_as_json(team)

    async def list_projects(self, request: AdminRequest) -> tuple[int, Any]:
        projects = await asyncio.to_thread(self.store.list_projects, request.viewer.visible_projects())
        return 200, [management.project_as_json(p) for p in projects]

    async def create_project(self, request: AdminRequest) -> tuple[int, Any]:
        body = await request.json()
        if not request.viewer.is_admin:  # a team's managers add projects to it
            access.require_team(request.viewer, body.get("team"), manage=True)
        project = await asyncio.to_thread(
            management.create_project, self.store, body.get("name", ""), body.get("team", "")
        )
        return 201, management.project_as_json(project)

    async def show_project(self, request: AdminRequest) -> tuple[int, Any]:
        viewer = request.viewer
        access.require_project(viewer, request.name, manage=False)
        found = await asyncio.to_thread(self.store.list_projects, [request.name])
        if not found:
            raise access.unknown("project", request.name)
        role = "admin" if viewer.is_admin else viewer.project_roles.get(request.name)
        return 200, {**management.project_as_json(found[0]), "role": role}

    # --- keys --------------------------------------------------------------------------------------
    async def list_keys(self, request: AdminRequest) -> tuple[int, Any]:
        keys = await asyncio.to_thread(self.store.list_keys, request.viewer.visible_projects())
        return 200, [management.key_as_json(k) for k in keys]

    async def create_key(self, request: AdminRequest) -> tuple[int, Any]:
        body = await request.json()
        project, lock = body.get("project"), bool(body.get("lock"))
        team, allow_projects, org_wide = _text(body, "team"), _names(body, "allow_projects"), _flag(body, "org_wide")
        if not request.viewer.is_admin:
            if team or allow_projects or org_wide:
                # Scopes reach beyond one project: an org admin's to give.
                raise access.permission_denied("a key's team, allowed projects or org-wide scope are for org admins")
            if not project:
                raise access.permission_denied("a key without a project is for org admins; name a project you manage")
            access.require_project(request.viewer, project, manage=True)
            # A manager's keys are locked to the project: an unlocked key could charge other
            # projects (x-spendgate-project), which its manager has no say over.
            if body.get("lock") is False:
                raise access.permission_denied("keys made by a project's managers are locked to it; omit 'lock'")
            lock = True
        new_key = await asyncio.to_thread(
            lambda: management.create_key(
                self.store,
                body.get("name", ""),
                project=project,
                lock=lock,
                environment=body.get("environment"),
                team=team,
                allow_projects=allow_projects,
                org_wide=bool(org_wide),
            )
        )
        return 201, new_key.as_json()

    async def update_key(self, request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "changing a key's scope")
        body = await request.json()
        key = await asyncio.to_thread(
            lambda: management.update_key(
                self.store,
                request.name,
                team=_text(body, "team"),
                clear_team="team" in body and body["team"] is None,
                allow_projects=_names(body, "allow_projects"),
                disallow_projects=_names(body, "disallow_projects"),
                org_wide=_flag(body, "org_wide"),
            )
        )
        return 201, management.key_as_json(key)

    async def revoke_key(self, request: AdminRequest) -> tuple[int, Any]:
        if not request.viewer.is_admin:
            keys = {k.name: k for k in await asyncio.to_thread(self.store.list_keys)}
            access.require_key(request.viewer, keys.get(request.name), request.name)
        return 201, management.key_as_json(await asyncio.to_thread(self.store.revoke_key, request.name))

    # --- spend -------------------------------------------------------------------------------------
    async def events(self, request: AdminRequest) -> tuple[int, Any]:
        limit = events_limit(request.query.get("limit"))
        return 200, await asyncio.to_thread(lambda: self.store.list_events(limit, visible=request.viewer.visibility))

    async def report(self, request: AdminRequest) -> tuple[int, Any]:
        query = ReportQuery(
            by=parse_dimensions(request.query.get("by")),
            since=report_day("since", request.query.get("since")),
            until=report_day("until", request.query.get("until")),
            where=parse_where(request.lists.get("where", ())),
            visible=request.viewer.visibility,
        )
        return 200, (await asyncio.to_thread(self.store.report, query)).as_json()

    # --- budgets -----------------------------------------------------------------------------------
    async def list_budgets(self, request: AdminRequest) -> tuple[int, Any]:
        if self.budget_statuses is None:
            raise not_found(request.path)
        statuses = await self.budget_statuses()
        if request.viewer.is_admin:
            return 200, statuses
        keys = await asyncio.to_thread(self.store.list_keys)
        scopes = request.viewer.budget_scopes(keys)
        return 200, [s for s in statuses if s["scope"] in scopes]

    async def create_budget(self, request: AdminRequest) -> tuple[int, Any]:
        budget = budget_from_request(await request.json())
        if not request.viewer.is_admin:
            keys = {k.name: k for k in await asyncio.to_thread(self.store.list_keys)}
            access.require_scope(request.viewer, budget.scope, keys)
        await asyncio.to_thread(self.store.create_budget, budget)
        return 201, {"name": budget.name, "scope": str(budget.scope), "limit_usd": format_usd(budget.limit_usd)}
