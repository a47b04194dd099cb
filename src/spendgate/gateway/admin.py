"""The admin API: the CLI's management commands over HTTP, guarded by SPENDGATE_ADMIN_KEY.

GET  /admin/teams                      POST /admin/teams     {"name", "cost_center"?}
GET  /admin/projects                   POST /admin/projects  {"name", "team"}
GET  /admin/keys                       POST /admin/keys      {"name", "project"?, "lock"?, "environment"?}
POST /admin/keys/NAME/revoke
GET  /admin/report?by=team,project&since=YYYY-MM-DD&until=YYYY-MM-DD
GET  /admin/events?limit=N
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import orjson

from spendgate import management
from spendgate.budgets.model import BudgetError, budget_from_request
from spendgate.gateway.asgi import (
    JSON_HEADERS,
    Receive,
    Scope,
    Send,
    read_body,
    request_headers,
    send_response,
)
from spendgate.gateway.errors import OPENAI, GatewayError, authentication_error, invalid_request, not_found
from spendgate.ledger.store import Store, StoreError
from spendgate.money import format_usd
from spendgate.reports.spec import ReportError, ReportQuery, parse_dimensions

MAX_ADMIN_BODY = 64 * 1024


class AdminAPI:
    def __init__(
        self,
        store: Store,
        admin_key: str | None,
        on_change: Callable[[], Awaitable[None]],
        budget_statuses: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.store = store
        self.admin_key = admin_key
        self.on_change = on_change
        # The live view (this gateway's in-flight reservations included), from the enforcer.
        self.budget_statuses = budget_statuses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = request_headers(scope)
            self._authorize(headers)
            status, payload = await self._dispatch(scope, receive, headers)
        except GatewayError as error:
            await send_response(send, error.status, JSON_HEADERS, error.body(OPENAI))
            return
        await send_response(send, status, JSON_HEADERS, orjson.dumps(payload))

    def _authorize(self, headers: dict[str, str]) -> None:
        if not self.admin_key:
            raise GatewayError(403, "permission_error", "the admin API is off: set SPENDGATE_ADMIN_KEY to turn it on")
        given = headers.get("authorization", "")[7:].strip()
        if not hmac.compare_digest(given.encode(), self.admin_key.encode()):
            raise authentication_error("admin API: wrong or missing 'Authorization: Bearer <SPENDGATE_ADMIN_KEY>'")

    async def _dispatch(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> tuple[int, Any]:
        method, path = scope["method"], scope["path"].rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        store = self.store
        try:
            if path == "/admin/teams" and method == "GET":
                return 200, [management.team_as_json(t) for t in await asyncio.to_thread(store.list_teams)]
            if path == "/admin/projects" and method == "GET":
                return 200, [management.project_as_json(p) for p in await asyncio.to_thread(store.list_projects)]
            if path == "/admin/keys" and method == "GET":
                return 200, [management.key_as_json(k) for k in await asyncio.to_thread(store.list_keys)]
            if path == "/admin/events" and method == "GET":
                limit = int(query.get("limit", "50"))
                return 200, await asyncio.to_thread(store.list_events, limit)
            if path == "/admin/budgets" and method == "GET" and self.budget_statuses is not None:
                return 200, await self.budget_statuses()
            if path == "/admin/report" and method == "GET":
                report_query = ReportQuery(
                    by=parse_dimensions(query.get("by")),
                    since=date.fromisoformat(query["since"]) if query.get("since") else None,
                    until=date.fromisoformat(query["until"]) if query.get("until") else None,
                )
                return 200, (await asyncio.to_thread(store.report, report_query)).as_json()
            if method == "POST":
                body = await self._json(receive, headers)
                result = await self._mutate(path, body)
                await self.on_change()
                return 201, result
        except (StoreError, ReportError, BudgetError, ValueError) as exc:
            raise invalid_request(str(exc)) from exc
        raise not_found(path)

    async def _mutate(self, path: str, body: dict[str, Any]) -> Any:
        store = self.store
        if path == "/admin/teams":
            team = await asyncio.to_thread(management.create_team, store, body.get("name", ""), body.get("cost_center"))
            return management.team_as_json(team)
        if path == "/admin/projects":
            project = await asyncio.to_thread(
                management.create_project, store, body.get("name", ""), body.get("team", "")
            )
            return management.project_as_json(project)
        if path == "/admin/keys":
            new_key = await asyncio.to_thread(
                lambda: management.create_key(
                    store,
                    body.get("name", ""),
                    project=body.get("project"),
                    lock=bool(body.get("lock")),
                    environment=body.get("environment"),
                )
            )
            return new_key.as_json()
        if path == "/admin/budgets":
            budget = budget_from_request(body)
            await asyncio.to_thread(store.create_budget, budget)
            return {"name": budget.name, "scope": str(budget.scope), "limit_usd": format_usd(budget.limit_usd)}
        if path.startswith("/admin/keys/") and path.endswith("/revoke"):
            name = path[len("/admin/keys/") : -len("/revoke")]
            return management.key_as_json(await asyncio.to_thread(store.revoke_key, name))
        raise not_found(path)

    async def _json(self, receive: Receive, headers: dict[str, str]) -> dict[str, Any]:
        raw = await read_body(receive, headers, MAX_ADMIN_BODY)
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise invalid_request(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise invalid_request("request body must be a JSON object")
        return body
