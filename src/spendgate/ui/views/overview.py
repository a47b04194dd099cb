"""The overview: the range's spend over time, by team and by project, the share in no project
and its trend, the top models and the budgets at risk. Its total is `spendgate report`'s for
the same range (the same store.report over the same rollups, scoped by the viewer)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spendgate.ui.auth import HOME_PATH, read, require_viewer
from spendgate.ui.registry import Page
from spendgate.ui.series import bucket_label, spend_series
from spendgate.ui.tables import Column, Table, View, respond
from spendgate.ui.views.budgets import at_risk, budgets_table, visible_statuses
from spendgate.ui.views.common import filters_of, project_path, team_path, usd

ZERO = Decimal(0)
CHART_TEAMS = 6
TOP_MODELS = 10
_AT_RISK_SHOWN = ("name", "limit_usd", "spent_usd", "projected_usd", "used")


async def home_redirect(request: Request) -> Response:
    return RedirectResponse(HOME_PATH, status_code=307)


async def overview(request: Request) -> Response:
    viewer = await require_viewer(request)
    filters = filters_of(request)
    visible = viewer.visibility

    def query(store: Any) -> tuple[Any, Any, Any]:
        daily = store.report(filters.query(("day", "team", "project"), visible=visible))
        models = store.report(filters.query(("model", "provider"), visible=visible))
        projects = store.list_projects(viewer.visible_projects())
        return daily, models, projects

    daily, models, projects = await read(request, query)
    statuses = await visible_statuses(request, viewer)

    by_team = spend_series(daily.rows, "team", filters.since, filters.until, filters.grain)
    by_project = spend_series(daily.rows, "project", filters.since, filters.until, filters.grain)
    total = daily.total_cost_usd
    unallocated_share = by_project.share_of(None)

    team_requests: dict[str | None, int] = {}
    project_requests: dict[str | None, int] = {}
    for row in daily.rows:
        team_requests[row.dims["team"]] = team_requests.get(row.dims["team"], 0) + row.requests
        project_requests[row.dims["project"]] = project_requests.get(row.dims["project"], 0) + row.requests
    team_of = {p.name: p.team for p in projects}

    over_time = Table(
        "spend-over-time",
        f"Spend per {filters.grain}",
        (
            Column("bucket", filters.grain),
            Column("cost_usd", "cost (USD)", "money"),
            Column("requests", "requests", "count"),
            Column("unallocated_usd", "in no project (USD)", "money"),
            Column("unallocated_share", "in no project", "ratio"),
        ),
    )
    unallocated = by_project.groups.get(None, [ZERO] * len(by_project.buckets))
    for i, bucket in enumerate(by_project.buckets):
        over_time.rows.append(
            {
                "bucket": bucket_label(bucket, filters.grain),
                "cost_usd": by_project.totals[i],
                "requests": by_project.requests[i],
                "unallocated_usd": unallocated[i],
                "unallocated_share": unallocated_share[i],
            }
        )
    teams = Table(
        "teams",
        "By team",
        (
            Column("team", "team"),
            Column("cost_usd", "cost (USD)", "money"),
            Column("requests", "requests", "count"),
            Column("share", "share", "ratio"),
        ),
        row_testid="team-row",
    )
    for team in by_team.top(len(by_team.groups)):
        cost = sum(by_team.groups[team], ZERO)
        teams.rows.append(
            {
                "team": team if team is not None else "(no team)",
                "_link_team": filters.link(team_path(team), team=None) if team is not None else None,
                "cost_usd": cost,
                "requests": team_requests.get(team, 0),
                "share": cost / total if total else None,
            }
        )
    project_table = Table(
        "projects",
        "By project",
        (
            Column("project", "project"),
            Column("team", "team"),
            Column("cost_usd", "cost (USD)", "money"),
            Column("requests", "requests", "count"),
            Column("share", "share", "ratio"),
        ),
        row_testid="project-row",
    )
    spent = {p: sum(v, ZERO) for p, v in by_project.groups.items()}
    # Every visible project is listed, those without spend in the range too (at 0).
    names = sorted({*team_of, *(p for p in spent if p is not None)}, key=lambda p: (-spent.get(p, ZERO), p))
    for name in names:
        project_table.rows.append(
            {
                "project": name,
                "_link_project": filters.link(project_path(name), project=None),
                "team": team_of.get(name),
                "cost_usd": spent.get(name, ZERO),
                "requests": project_requests.get(name, 0),
                "share": spent.get(name, ZERO) / total if total else None,
            }
        )
    model_table = Table(
        "models",
        "Top models",
        (
            Column("model", "model"),
            Column("provider", "provider"),
            Column("cost_usd", "cost (USD)", "money"),
            Column("requests", "requests", "count"),
        ),
    )
    for row in models.rows[:TOP_MODELS]:
        model_table.rows.append(
            {
                "model": row.dims["model"],
                "provider": row.dims["provider"],
                "cost_usd": row.cost_usd,
                "requests": row.requests,
            }
        )
    risky = budgets_table("budgets-at-risk", "Budgets at risk", [s for s in statuses if at_risk(s)])
    # A narrow card: the details are on the budgets page (and in this table's CSV).
    risky.columns = [replace(c, shown=c.key in _AT_RISK_SHOWN) for c in risky.columns]

    in_no_project = spent.get(None, ZERO)
    context = {
        "title": "Overview",
        "filters": filters,
        "total_cost_usd": usd(total) if daily.cost_known else "unpriced",
        "total_requests": daily.total_requests,
        "unpriced_requests": daily.unpriced_requests,
        "unallocated_usd": usd(in_no_project),
        "unallocated_share": in_no_project / total if total else None,
        "charts": {
            "spend-chart": by_team.chart("spend (USD) by team", by_team.top(CHART_TEAMS), none_label="(no team)"),
            "unallocated-chart": {
                "label": "share in no project (%)",
                "x": by_project.chart("")["x"],
                "series": [
                    {"label": "in no project (%)", "values": [_pct(s) for s in unallocated_share]},
                ],
            },
        },
    }
    return respond(request, View("overview.html", context, [over_time, teams, project_table, model_table, risky]))


def _pct(share: Decimal | None) -> str:
    return "0" if share is None else usd(share * 100)


PAGES = (
    Page("/ui", home_redirect),
    Page("/ui/", overview, nav="Overview"),
)
