"""The dashboard's pages. For now one placeholder overview: the spend of the projects the
viewer may see (the real overview replaces it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spendgate.money import format_usd
from spendgate.reports.spec import ReportQuery
from spendgate.ui.auth import HOME_PATH, read, require_viewer
from spendgate.ui.templating import render


async def home_redirect(request: Request) -> Response:
    return RedirectResponse(HOME_PATH, status_code=307)


async def overview(request: Request) -> Response:
    viewer = await require_viewer(request)

    def query(store: Any) -> tuple[list[Any], Any]:
        projects = store.list_projects(viewer.visible_projects())
        report = store.report(ReportQuery(by=("project",), visible=viewer.visibility))
        return projects, report

    projects, report = await read(request, query)
    cost = {row.dims["project"]: row for row in report.rows}
    rows = [
        {
            "project": p.name,
            "team": p.team,
            "cost_usd": format_usd(cost[p.name].cost_usd) if p.name in cost else "0",
            "requests": cost[p.name].requests if p.name in cost else 0,
        }
        for p in projects
    ]
    listed = {p.name for p in projects}
    # Spend in no project the viewer sees in full: unallocated (admins), a team's project-less spend.
    other = sum((r.cost_usd for r in report.rows if r.dims["project"] not in listed), Decimal(0))
    return render(
        request,
        "overview.html",
        {
            "rows": rows,
            "other_cost_usd": format_usd(other) if other else None,
            "total_cost_usd": format_usd(report.total_cost_usd) if report.cost_known else "unpriced",
        },
    )
