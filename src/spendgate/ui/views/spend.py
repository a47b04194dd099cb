"""Spend pages: the org, a team, a project, with drill-down (org -> team -> project -> feature
-> the single events), a date range and filters, and a breakdown by any dimension. Cost,
requests, error rate and cost per request come from the rollups (the report); latency from the
latest requests' raw events (rollups keep no latency), never from a month of raw events."""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from decimal import Decimal
from statistics import fmean
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from spendgate.access.model import Viewer
from spendgate.reports.spec import TAG_PREFIX, ReportResult, ReportRow
from spendgate.ui.auth import read, require_viewer
from spendgate.ui.filters import BREAKDOWNS, NONE_VALUE, Filters
from spendgate.ui.registry import Page
from spendgate.ui.series import spend_series
from spendgate.ui.tables import Column, Table, View, respond
from spendgate.ui.views.common import day_start, figures, filters_of, project_path, team_path

LATENCY_SAMPLE = 1000  # latency is read from this many of the newest matching events
EVENTS_SHOWN = 25
# Raw events are read from at most this many days (the latest with matching requests, as the
# rollups say): a rare filter never makes a page scan a month of raw events.
RAW_DAYS = 3
_FIGURES = tuple(f.name for f in fields(ReportRow) if f.name != "dims")
CHART_GROUPS = 6
# The drill-down: what a page breaks down by when the query string does not say.
_NEXT_LEVEL = (("feature", "model"), ("project", "feature"), ("team", "project"))


def without_days(daily: ReportResult, by: str) -> ReportResult:
    """A report by (day, ``by``) summed over its days: the report by ``by`` for the same range,
    figure for figure (pure; one query fewer per page)."""
    groups: dict[str | None, ReportRow] = {}
    for row in daily.rows:
        key = row.dims[by]
        total = groups.setdefault(key, ReportRow(dims={by: key}))
        for name in _FIGURES:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return ReportResult(by=(by,), rows=list(groups.values())).sort()


def recent_days(rows: list[ReportRow], wanted: int, most: int) -> tuple[date, date] | None:
    """The latest days holding ``wanted`` requests (at most ``most`` days, counted from the
    latest day with any), from a report by day (pure); None when there is no request."""
    per_day: dict[date, int] = {}
    for row in rows:
        day = date.fromisoformat(str(row.dims["day"])[:10])
        per_day[day] = per_day.get(day, 0) + row.requests
    days = sorted((d for d, n in per_day.items() if n), reverse=True)
    if not days:
        return None
    last, first, seen = days[0], days[0], 0
    for day in days:
        if (last - day).days >= most:
            break
        first, seen = day, seen + per_day[day]
        if seen >= wanted:
            break
    return first, last


def default_breakdown(filters: Filters) -> str:
    for dim, then in _NEXT_LEVEL:
        if filters.has(dim):
            return then
    return "team"


def _check_visible(viewer: Viewer, filters: Filters, projects: list[Any], teams: list[Any]) -> None:
    """A project or team named by the path or the query string must be one the viewer sees:
    otherwise the page is a 404, as for one that does not exist (its name is not echoed)."""
    project, team = filters.value("project"), filters.value("team")
    if filters.has("project") and project is not None and project not in {p.name for p in projects}:
        raise HTTPException(404, "no such project")
    if filters.has("team") and team is not None and team not in {t.name for t in teams}:
        raise HTTPException(404, "no such team")


def _summed(rows: list[ReportRow]) -> ReportRow | None:
    if not rows:
        return None
    total = ReportRow(dims={})
    for row in rows:
        for name in ("cost_usd", "requests", "unpriced_requests", "error_requests"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return total


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _drill_link(filters: Filters, path: str, dim: str, value: str | None) -> str | None:
    if dim == "team" and value is not None:
        return filters.link(team_path(value), team=None, project=None, by=None)
    if dim == "project" and value is not None:
        return filters.link(project_path(value), project=None, team=None, by=None)
    if dim.startswith(TAG_PREFIX):
        return filters.link(path, tag=f"{dim[len(TAG_PREFIX) :]}:{NONE_VALUE if value is None else value}", by=None)
    return filters.link(path, **{dim: NONE_VALUE if value is None else value, "by": None})


async def _spend_page(request: Request, fixed: dict[str, str], path: str, heading: str) -> Response:
    viewer = await require_viewer(request)
    filters = filters_of(request, fixed)
    by = filters.by or default_breakdown(filters)
    visible = viewer.visibility

    def query(store: Any) -> tuple[Any, ...]:
        projects = store.list_projects(viewer.visible_projects())
        teams = store.list_teams(viewer.visible_teams())
        _check_visible(viewer, filters, projects, teams)
        daily = store.report(filters.query(("day", by), visible=visible))
        days = recent_days(daily.rows, LATENCY_SAMPLE, RAW_DAYS)
        events: list[dict[str, Any]] = []
        if days is not None:
            events = store.list_events(
                LATENCY_SAMPLE,
                visible=visible,
                where=filters.report_where,
                since=day_start(days[0]),
                until=day_start(days[1], 1),
            )
        return daily, events, {p.name: p.team for p in projects}

    daily, events, team_of = await read(request, query)
    breakdown = without_days(daily, by)
    series = spend_series(daily.rows, by, filters.since, filters.until, filters.grain)
    summary = figures(_summed(breakdown.rows))
    latencies = [float(e["latency_ms"]) for e in events if e["latency_ms"] is not None]
    total = breakdown.total_cost_usd

    label = by if not by.startswith(TAG_PREFIX) else f"tag {by[len(TAG_PREFIX) :]}"
    table = Table(
        "breakdown",
        f"By {label}",
        (
            Column("value", label),
            Column("cost_usd", "cost (USD)", "money"),
            Column("requests", "requests", "count"),
            Column("error_rate", "error rate", "ratio"),
            Column("cost_per_request", "cost per request (USD)", "money"),
            Column("share", "share", "ratio"),
        ),
        row_testid="breakdown-row",
    )
    for row in breakdown.rows:
        value = row.dims[by]
        table.rows.append(
            {
                "value": value if value is not None else NONE_VALUE,
                "_link_value": _drill_link(filters, path, by, value),
                **figures(row),
                "share": row.cost_usd / total if total else None,
            }
        )
    event_table = Table(
        "events",
        f"Latest requests (up to {EVENTS_SHOWN}, from the last days with any)",
        (
            Column("ts", "time (UTC)"),
            Column("project", "project"),
            Column("feature", "feature"),
            Column("model", "model"),
            Column("customer", "customer"),
            Column("environment", "environment"),
            Column("key", "key"),
            Column("status", "status"),
            Column("input_tokens", "input", "count"),
            Column("output_tokens", "output", "count"),
            Column("cost_usd", "cost (USD)", "money"),
            Column("latency_ms", "latency", "ms"),
            Column("id", "event id", shown=False),
        ),
        row_testid="event-row",
        empty="No request in this range.",
    )
    for event in events[:EVENTS_SHOWN]:
        row = {c.key: event.get(c.key) for c in event_table.columns}
        row["cost_usd"] = None if event["cost_usd"] is None else Decimal(event["cost_usd"])
        event_table.rows.append(row)

    crumbs = [("Org", filters.link("/ui/spend", team=None, project=None, feature=None, by=None))]
    if filters.value("team") or filters.value("project"):
        team = filters.value("team") or team_of.get(filters.value("project") or "")
        if team and viewer.sees_team(team):
            crumbs.append(
                (f"team {team}", filters.link(team_path(team), team=None, project=None, feature=None, by=None))
            )
    if filters.value("project"):
        name = filters.value("project") or ""
        crumbs.append((f"project {name}", filters.link(project_path(name), project=None, feature=None, by=None)))
    if filters.has("feature"):
        crumbs.append((f"feature {filters.value('feature') or NONE_VALUE}", filters.link(path)))

    context = {
        "title": heading,
        "heading": heading,
        "filters": filters,
        "fixed": tuple(fixed),
        "path": path,
        "by": by,
        "breakdowns": [(b, filters.link(path, by=b)) for b in BREAKDOWNS if b not in fixed],
        "crumbs": crumbs,
        "active_filters": [
            (dim, value, filters.link(path, **{("tag" if dim.startswith(TAG_PREFIX) else dim): None}))
            for dim, value in filters.where
            if dim not in fixed
        ],
        "summary": summary,
        "total_cost_usd": breakdown.total_cost_usd,
        "cost_known": breakdown.cost_known,
        "latency_avg_ms": fmean(latencies) if latencies else None,
        "latency_p95_ms": _percentile(latencies, 0.95),
        "latency_sample": len(latencies),
        "charts": {
            "spend-chart": series.chart(f"spend (USD) by {label}", series.top(CHART_GROUPS), none_label=NONE_VALUE)
        },
    }
    return respond(request, View("spend.html", context, [table, event_table]))


async def org(request: Request) -> Response:
    return await _spend_page(request, {}, "/ui/spend", "Spend")


async def team(request: Request) -> Response:
    name = request.path_params["name"]
    return await _spend_page(request, {"team": name}, team_path(name), f"Team {name}")


async def project(request: Request) -> Response:
    name = request.path_params["name"]
    return await _spend_page(request, {"project": name}, project_path(name), f"Project {name}")


PAGES = (
    Page("/ui/spend", org, nav="Spend"),
    Page("/ui/teams/{name}", team),
    Page("/ui/projects/{name}", project),
)
