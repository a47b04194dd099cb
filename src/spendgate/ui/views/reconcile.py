"""Reconciliation: the ledger beside a provider's own usage and cost reports, for org admins
only (the provider's reports cover the whole organization, every project and key). The provider
is asked only when the form is submitted (its admin API is rate-limited), never on a plain visit."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from spendgate.ui.auth import read, require_viewer
from spendgate.ui.registry import Page, admins
from spendgate.ui.tables import Column, Table, View, respond
from spendgate.ui.views.common import today

MAX_DAYS = 92  # a quarter: the provider's reports are read page by page, 31 days a page
COLUMNS = (
    Column("day", "day"),
    Column("model", "model"),
    Column("api_key_id", "provider key"),
    Column("ledger_cost_usd", "ledger $", "money"),
    Column("provider_cost_usd", "provider $", "money"),
    Column("diff_usd", "diff $", "money"),
    Column("ledger_input_tokens", "ledger input", "number"),
    Column("provider_input_tokens", "provider input", "number"),
    Column("ledger_output_tokens", "ledger output", "number"),
    Column("provider_output_tokens", "provider output", "number"),
    Column("verdict", "verdict"),
    Column("project_or_workspace_id", "provider project", shown=False),
    Column("effective_rate", "effective rate", shown=False),
    Column("provider_cost_basis", "provider cost basis", shown=False),
)


def _day(text: str | None, default: date, name: str) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be a date (YYYY-MM-DD)") from None


async def reconcile_page(request: Request) -> Response:
    viewer = await require_viewer(request)
    if not viewer.is_admin:
        raise HTTPException(403, "reconciliation covers the whole organization: org admins only")
    from spendgate.providers.admin import KEY_VARIABLES, AdminApiError, AdminKeyError, AdminResponseError
    from spendgate.reconcile import propose_overrides
    from spendgate.reconcile.service import fetch_report, reconcile_with_ledger

    settings = request.app.state.settings
    params = request.query_params
    until = _day(params.get("until"), today(request) - timedelta(days=1), "until")
    since = _day(params.get("since"), until - timedelta(days=6), "since")
    provider = params.get("provider")
    if provider is not None and provider not in KEY_VARIABLES:
        raise HTTPException(400, "provider is openai or anthropic")
    if until < since or (until - since).days >= MAX_DAYS:
        raise HTTPException(400, f"since must be on or before until, at most {MAX_DAYS} days apart")
    credentials = settings.credentials if settings is not None else {}
    keys = {name: bool(credentials.get(variable)) for name, variable in KEY_VARIABLES.items()}
    table = Table("reconciliation", "Ledger beside the provider", COLUMNS, row_testid="reconcile-row")
    context: dict[str, Any] = {
        "title": "Reconciliation",
        "provider": provider,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "keys": keys,
        "variables": KEY_VARIABLES,
        "result": None,
        "proposals": [],
        "error": None,
    }
    status = 200
    if provider is not None and settings is not None:
        try:
            report = await fetch_report(settings, provider, since, until, credentials)
            result = await read(request, lambda store: reconcile_with_ledger(store, settings, report))
        except AdminKeyError as exc:
            context["error"], status = str(exc), 400
        except (AdminApiError, AdminResponseError) as exc:
            context["error"], status = str(exc), 502
        else:
            table.rows = [row.as_json() for row in result.rows]
            context["result"] = result.as_json()
            context["proposals"] = [p.toml() for p in propose_overrides(result)[0]]
    return respond(request, View("reconcile.html", context, [table], status_code=status))


PAGES = (Page("/ui/reconcile", reconcile_page, nav="Reconciliation", shown=admins),)
