"""Alerts and webhooks: the alerts of the budgets a viewer sees, with their deliveries; the
webhooks they go to (org-wide configuration: org admins list, add and remove them)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spendgate.access.model import Viewer
from spendgate.ledger.errors import StoreError
from spendgate.redact import redact_url
from spendgate.ui.auth import checked_form, read, require_viewer
from spendgate.ui.registry import Page
from spendgate.ui.tables import Column, Table, View, respond
from spendgate.ui.views.budgets import visible_statuses

ALERTS_SHOWN = 200


async def _page(request: Request, viewer: Viewer, *, error: str | None = None, status: int = 200) -> Response:
    budgets = {s["name"] for s in await visible_statuses(request, viewer)}

    def query(store: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        hooks = store.list_webhooks() if viewer.is_admin else []
        return store.list_alerts(ALERTS_SHOWN), hooks

    alerts, hooks = await read(request, query)
    alert_table = Table(
        "alerts",
        "Alerts",
        (
            Column("created_at", "time (UTC)"),
            Column("kind", "kind"),
            Column("budget", "budget"),
            Column("window", "window"),
            Column("threshold", "threshold"),
            Column("delivered", "delivered"),
        ),
        row_testid="alert-row",
        empty="No alert yet.",
    )
    for alert in alerts:
        # An alert is about a budget: shown to whoever sees the budget (admins: every alert).
        if not viewer.is_admin and alert["budget"] not in budgets:
            continue
        deliveries = alert["deliveries"]
        done = sum(1 for d in deliveries if d["status"] == "delivered")
        alert_table.rows.append(
            {
                **{k: alert[k] for k in ("created_at", "kind", "budget", "window", "threshold")},
                "delivered": f"{done}/{len(deliveries)}",
            }
        )
    tables = [alert_table]
    if viewer.is_admin:
        hook_table = Table(
            "webhooks",
            "Webhooks",
            (
                Column("id", "id"),
                Column("url", "url"),
                Column("format", "format"),
                Column("signed", "signed"),
                Column("created_at", "added"),
            ),
            row_testid="webhook-row",
            empty="No webhook: alerts are recorded but sent nowhere.",
        )
        for hook in hooks:
            hook_table.rows.append(
                {
                    "id": hook["id"],
                    "url": redact_url(hook["url"]),  # a chat webhook's URL is its credential
                    "format": hook["format"],
                    "signed": hook["has_secret"],
                    "created_at": hook["created_at"],
                }
            )
        tables.append(hook_table)
    return respond(request, View("alerts.html", {"title": "Alerts", "error": error}, tables, status_code=status))


async def alerts(request: Request) -> Response:
    return await _page(request, await require_viewer(request))


async def _admin(request: Request) -> tuple[Viewer, Any]:
    viewer = await require_viewer(request)
    form = await checked_form(request)
    if not viewer.is_admin:
        raise HTTPException(403, "webhooks are org-wide: only org admins change them")
    return viewer, form


async def add_webhook(request: Request) -> Response:
    viewer, form = await _admin(request)
    url, fmt = str(form.get("url") or "").strip(), str(form.get("format") or "json")
    secret = str(form.get("secret") or "") or None
    try:
        await read(request, lambda store: store.add_webhook(url, secret, fmt))
    except StoreError as exc:
        return await _page(request, viewer, error=str(exc), status=400)
    return RedirectResponse("/ui/alerts", status_code=303)


async def remove_webhook(request: Request) -> Response:
    viewer, form = await _admin(request)
    hook = str(form.get("id") or "")
    try:
        await read(request, lambda store: store.remove_webhook(hook))
    except StoreError as exc:
        return await _page(request, viewer, error=str(exc), status=400)
    return RedirectResponse("/ui/alerts", status_code=303)


PAGES = (
    Page("/ui/alerts", alerts, nav="Alerts"),
    Page("/ui/alerts/webhooks", add_webhook, methods=("POST",)),
    Page("/ui/alerts/webhooks/remove", remove_webhook, methods=("POST",)),
)
