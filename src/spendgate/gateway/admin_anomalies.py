"""The admin API's anomalies and suspensions: what `spendgate anomalies` and
`spendgate suspensions` do, for org admins (an anomaly names scopes across teams)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from typing import Any

from spendgate.anomalies.record import ACKNOWLEDGED, RESOLVED
from spendgate.budgets.model import Scope
from spendgate.gateway import admin_access as access
from spendgate.gateway.admin_routing import AdminRequest, Route, route


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
        return 200, await asyncio.to_thread(store.resume_scope, Scope.parse(request.name))

    return [
        route("GET", "/admin/anomalies", list_anomalies, ("since",)),
        route("POST", "/admin/anomalies/{name}/ack", status_of(ACKNOWLEDGED)),
        route("POST", "/admin/anomalies/{name}/resolve", status_of(RESOLVED)),
        route("GET", "/admin/suspensions", list_suspensions),
        route("POST", "/admin/suspensions/{name}/resume", resume, changes_config=True),
    ]
