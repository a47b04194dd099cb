"""The admin API: the CLI's management commands over HTTP, guarded by SPENDGATE_ADMIN_KEY.

GET  /admin/teams                      POST /admin/teams     {"name", "cost_center"?}
GET  /admin/projects                   POST /admin/projects  {"name", "team"}
GET  /admin/keys                       POST /admin/keys      {"name", "project"?, "lock"?, "environment"?,
                                                              "team"?, "allow_projects"?, "org_wide"?}
POST /admin/keys/NAME/revoke
POST /admin/keys/NAME/update           {"team"? (null: none), "allow_projects"?, "disallow_projects"?, "org_wide"?}
GET  /admin/report?by=team,project&since=YYYY-MM-DD&until=YYYY-MM-DD
GET  /admin/events?limit=N             (1 to 10,000; default 50)

Only ``Authorization: Bearer <SPENDGATE_ADMIN_KEY>`` is accepted (the scheme's case does
not matter, RFC 7235). Query parameters are checked: an unknown, repeated or out-of-range
one is a 400, never a silent default.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

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
DEFAULT_EVENTS_LIMIT = 50
MAX_EVENTS_LIMIT = 10_000
# The query parameters each route reads; anything else is refused (the others take none).
_QUERY_PARAMETERS = {"/admin/events": ("limit",), "/admin/report": ("by", "since", "until")}
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_ROUTES = {
    *((f"/admin/{name}", method) for name in ("teams", "projects", "keys", "budgets") for method in ("GET", "POST")),
    ("/admin/events", "GET"),
    ("/admin/report", "GET"),
}
_KEY_ACTION = re.compile(r"^/admin/keys/([^/]+)/(revoke|update)$")
MAX_NAMES = 1000  # projects in one allow or disallow list


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


def query_parameters(path: str, query_string: bytes) -> dict[str, str]:
    """The route's query parameters, each given at most once; anything else is a 400."""
    try:
        pairs = parse_qsl(query_string.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise invalid_request("the query string is not UTF-8") from exc
    allowed = _QUERY_PARAMETERS.get(path, ())
    query: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise invalid_request(f"unknown query parameter {name[:64]!r} for {path} (known: {known})")
        if name in query:
            raise invalid_request(f"query parameter {name!r} is given more than once")
        query[name] = value
    return query


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
        if not admin_key_matches(bearer_token(headers.get("authorization", "")), self.admin_key):
            raise authentication_error("admin API: wrong or missing 'Authorization: Bearer <SPENDGATE_ADMIN_KEY>'")

    async def _dispatch(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> tuple[int, Any]:
        method, path = scope["method"], scope["path"].rstrip("/")
        store = self.store
        try:
            if (path, method) in _ROUTES or (method == "POST" and _KEY_ACTION.match(path)):
                query = query_parameters(path, scope.get("query_string", b""))
            else:
                raise not_found(path)
            if path == "/admin/teams" and method == "GET":
                return 200, [management.team_as_json(t) for t in await asyncio.to_thread(store.list_teams)]
            if path == "/admin/projects" and method == "GET":
                return 200, [management.project_as_json(p) for p in await asyncio.to_thread(store.list_projects)]
            if path == "/admin/keys" and method == "GET":
                return 200, [management.key_as_json(k) for k in await asyncio.to_thread(store.list_keys)]
            if path == "/admin/events" and method == "GET":
                limit = events_limit(query.get("limit"))
                return 200, await asyncio.to_thread(store.list_events, limit)
            if path == "/admin/budgets" and method == "GET" and self.budget_statuses is not None:
                return 200, await self.budget_statuses()
            if path == "/admin/report" and method == "GET":
                report_query = ReportQuery(
                    by=parse_dimensions(query.get("by")),
                    since=report_day("since", query.get("since")),
                    until=report_day("until", query.get("until")),
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
                    team=_text(body, "team"),
                    allow_projects=_names(body, "allow_projects"),
                    org_wide=bool(_flag(body, "org_wide")),
                )
            )
            return new_key.as_json()
        if path == "/admin/budgets":
            budget = budget_from_request(body)
            await asyncio.to_thread(store.create_budget, budget)
            return {"name": budget.name, "scope": str(budget.scope), "limit_usd": format_usd(budget.limit_usd)}
        action = _KEY_ACTION.match(path)
        if action and action[2] == "revoke":
            return management.key_as_json(await asyncio.to_thread(store.revoke_key, action[1]))
        if action and action[2] == "update":
            key = await asyncio.to_thread(
                lambda: management.update_key(
                    store,
                    action[1],
                    team=_text(body, "team"),
                    clear_team="team" in body and body["team"] is None,
                    allow_projects=_names(body, "allow_projects"),
                    disallow_projects=_names(body, "disallow_projects"),
                    org_wide=_flag(body, "org_wide"),
                )
            )
            return management.key_as_json(key)
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
