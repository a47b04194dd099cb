"""The admin API's anomalies, suspensions and approvals: what `spendgate anomalies`,
`spendgate suspensions` and `spendgate approvals` do, for org admins (they name scopes
across teams)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from spendgate.anomalies.record import ACKNOWLEDGED, RESOLVED
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, Scope
from spendgate.gateway import admin_access as access
from spendgate.gateway.admin_routing import AdminRequest, Route, route
from spendgate.ledger.store.approvals import APPROVED, DENIED


def anomaly_routes(store: Any) -> list[Route]:
    async def list_anomalies(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "anomalies")
        text = request.query.get("since")
        # A bad date is a ValueError: the admin API answers it as a 400.
        since = datetime.combine(date.fromisoformat(text), time(), UTC) if text else None
        return 200, await asyncio.to_thread(store.list_anomalies, since)

    def status_of(status: str) -> Any:
        async def change(request: AdminRequest) -> tuple[int, Any]:
            access.require_admin(request.viewer, "anomalies")
            return 200, await asyncio.to_thread(store.set_anomaly_status, request.name, status)

        return change

    async def list_suspensions(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "suspensions")
        return 200, await asyncio.to_thread(store.list_suspensions)

    async def resume(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "resuming a scope")
        return 200, await asyncio.to_thread(store.resume_scope, Scope.parse(request.name, ANOMALY_SCOPE_KINDS))

    async def list_rules(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "anomaly rules")
        return 200, await asyncio.to_thread(store.list_anomaly_rules)

    async def create_rule(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "anomaly rules")
        body = await request.json()
        scope_text, suspend = body.get("scope"), body.get("suspend", False)
        if not isinstance(scope_text, str) or not isinstance(suspend, bool):
            raise ValueError('an anomaly rule is {"scope": "team:NAME" (or trace:*, …), "suspend": true|false}')
        scope = Scope.parse(scope_text, ANOMALY_SCOPE_KINDS)  # a bad scope: ValueError, a 400
        return 201, await asyncio.to_thread(store.create_anomaly_rule, scope, suspend)

    async def delete_rule(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "anomaly rules")
        scope = Scope.parse(request.name, ANOMALY_SCOPE_KINDS)
        await asyncio.to_thread(store.delete_anomaly_rule, scope)
        return 200, {"scope": str(scope), "deleted": True}

    async def list_approvals(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "approvals")
        return 200, await asyncio.to_thread(store.list_approvals, request.query.get("status"))

    async def approve(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "approving extra spend")
        body = await request.json()
        try:
            extra = Decimal(str(body.get("extra_usd", "")))
        except InvalidOperation as exc:
            raise ValueError('extra_usd must be a dollar amount, e.g. "50"') from exc
        reason = str(body.get("reason") or "").strip()
        if not reason:
            raise ValueError("an approval needs a reason")
        now = datetime.now(UTC)
        return 200, await asyncio.to_thread(
            store.decide_approval,
            request.name,
            APPROVED,
            now,
            extra=extra,
            reason=reason,
            decided_by=_decider(request),
        )

    async def deny(request: AdminRequest) -> tuple[int, Any]:
        access.require_admin(request.viewer, "denying extra spend")
        body = await request.json()
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        return 200, await asyncio.to_thread(
            store.decide_approval, request.name, DENIED, datetime.now(UTC), reason=reason, decided_by=_decider(request)
        )

    return [
        route("GET", "/admin/approvals", list_approvals, ("status",)),
        route("POST", "/admin/approvals/{name}/approve", approve, changes_config=True),
        route("POST", "/admin/approvals/{name}/deny", deny, changes_config=True),
        route("GET", "/admin/anomalies", list_anomalies, ("since",)),
        route("POST", "/admin/anomalies/{name}/ack", status_of(ACKNOWLEDGED)),
        route("POST", "/admin/anomalies/{name}/resolve", status_of(RESOLVED)),
        route("GET", "/admin/anomaly-rules", list_rules),
        route("POST", "/admin/anomaly-rules", create_rule, changes_config=True),
        route("DELETE", "/admin/anomaly-rules/{name}", delete_rule, changes_config=True),
        route("GET", "/admin/suspensions", list_suspensions),
        route("POST", "/admin/suspensions/{name}/resume", resume, changes_config=True),
    ]


def _decider(request: AdminRequest) -> str:
    """Who decided an approval: the signed-in user, or the admin key (no user behind it)."""
    return request.viewer.name or "admin key"
