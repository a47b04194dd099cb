"""Anomalies: the spend anomalies of the scopes a viewer may see (``anomaly_access.py``), with
their drivers, and the suspended scopes among them; those allowed acknowledge, resolve and
resume here (``spendgate anomalies ack|resolve``, ``spendgate suspensions resume``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spendgate.access.model import Viewer
from spendgate.anomalies.record import ACKNOWLEDGED, RESOLVED, STATUSES
from spendgate.attribution.model import GatewayKey
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, BudgetError, Scope
from spendgate.ledger.errors import StoreError
from spendgate.reports.spec import ReportQuery
from spendgate.ui.anomaly_access import acts_on_scope, sees_scope
from spendgate.ui.anomaly_filters import AnomalyFilters, parse_anomaly_filters
from spendgate.ui.auth import checked_form, read, require_viewer
from spendgate.ui.filters import FilterError
from spendgate.ui.registry import Page
from spendgate.ui.tables import Column, Table, View, respond
from spendgate.ui.views.common import day_start, today

PAGE = "/ui/anomalies"
_ANOMALY_ID = re.compile(r"anom_[0-9a-f]{1,32}")
_MAX_SCOPE = 300
_SHOWN_DRIVERS = 5  # the biggest few; the CSV has them all
READ_AT_MOST = 1000  # the newest anomalies of a period a page reads (a narrower period shows older ones)


@dataclass(frozen=True)
class Access:
    sees: bool
    acts: bool


def _filters_of(request: Request) -> AnomalyFilters:
    try:
        return parse_anomaly_filters(request.query_params, today(request))
    except FilterError as exc:
        raise HTTPException(400, str(exc)) from exc


def _feature_projects(store: Any, feature: str, start: str, end: str) -> frozenset[str | None]:
    """The projects a feature's spend was in over an anomaly's days (UTC)."""
    since, until = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    query = ReportQuery(by=("project",), since=since, until=until, where=(("feature", (feature,)),))
    return frozenset(row.dims["project"] for row in store.report(query).rows)


def _access(
    store: Any, viewer: Viewer, keys: Mapping[str, GatewayKey], scope_text: str, anomaly: Mapping[str, Any] | None
) -> Access:
    """What ``viewer`` may do with a scope's anomaly (None: a suspension with no anomaly left)."""
    try:
        scope = Scope.parse(scope_text, ANOMALY_SCOPE_KINDS)
    except BudgetError:
        return Access(sees=viewer.is_admin, acts=viewer.is_admin)
    projects: frozenset[str | None] = frozenset()
    if scope.kind == "feature" and not viewer.is_admin and anomaly is not None:
        projects = _feature_projects(store, scope.value or "", anomaly["start"], anomaly["end"])
    return Access(
        sees=sees_scope(viewer, scope, keys, projects),
        acts=acts_on_scope(viewer, scope, keys, projects),
    )


def _kind_of(scope_text: str) -> str:
    return "org" if scope_text == "org" else scope_text.partition(":")[0]


def visible_anomalies(store: Any, viewer: Viewer, chosen: AnomalyFilters) -> tuple[list[dict], list[dict], bool]:
    """The chosen anomalies this viewer may see, newest first, each with what they may do;
    the suspended scopes they may see; and whether the period held more than are read."""
    keys = {k.name: k for k in store.list_keys()}
    suspensions = {s["scope"]: s for s in store.list_suspensions()}
    read_rows = store.list_anomalies(
        day_start(chosen.since), READ_AT_MOST, until=day_start(chosen.until, 1), newest_first=True
    )
    rows = []
    for anomaly in read_rows:
        if chosen.status and anomaly["status"] != chosen.status:
            continue
        if chosen.kind and _kind_of(anomaly["scope"]) != chosen.kind:
            continue
        access = _access(store, viewer, keys, anomaly["scope"], anomaly)
        if access.sees:
            rows.append({**anomaly, "may_act": access.acts, "suspended": anomaly["scope"] in suspensions})
    suspended = []
    for scope_text, suspension in suspensions.items():
        anomaly = _anomaly_or_none(store, suspension["anomaly_id"])
        access = _access(store, viewer, keys, scope_text, anomaly)
        if access.sees:
            suspended.append({**suspension, "may_act": access.acts})
    return rows, suspended, len(read_rows) >= READ_AT_MOST


def _anomaly_or_none(store: Any, anomaly_id: str | None) -> dict[str, Any] | None:
    if not anomaly_id:
        return None
    try:
        return store.anomaly(anomaly_id)
    except StoreError:
        return None


def window_text(start: str, end: str) -> str:
    """An anomaly's window to read at a glance, to the minute (UTC): the CSV has the instants."""
    first, last = start[:16].replace("T", " "), end[:16].replace("T", " ")
    return f"{first} – {last[11:]}" if first[:10] == last[:10] else f"{first} – {last}"


def _drivers_text(drivers: list[dict[str, Any]]) -> str:
    return "; ".join(f"{d['dimension']} {d['value']}: {d['cost_usd']} (usual {d['expected_usd']})" for d in drivers)


async def anomalies(request: Request) -> Response:
    viewer = await require_viewer(request)
    chosen = _filters_of(request)
    rows, suspended, truncated = await read(request, lambda store: visible_anomalies(store, viewer, chosen))
    table = Table(
        "anomalies",
        "Anomalies",
        (
            Column("id", "id", shown=False),
            Column("scope", "scope"),
            Column("start", "from"),
            Column("end", "to"),
            Column("cost_usd", "actual (USD)", "money"),
            Column("expected_usd", "expected (USD)", "money"),
            Column("score", "score"),
            Column("drivers_text", "drivers"),
            Column("status", "status"),
            Column("suspended", "suspended"),
        ),
        row_testid="anomaly-row",
        empty="No anomaly here.",
    )
    for row in rows:
        drivers = row["drivers"]
        shown = {"window": window_text(row["start"], row["end"]), "top": drivers[:_SHOWN_DRIVERS]}
        table.rows.append({**row, "drivers_text": _drivers_text(drivers), **shown})
    suspensions = Table(
        "suspensions",
        "Suspended scopes",
        (Column("scope", "scope"), Column("anomaly_id", "anomaly"), Column("since", "since")),
        row_testid="suspension-row",
        empty="No scope is suspended.",
    )
    suspensions.rows = suspended
    context = {
        "title": "Anomalies",
        "chosen": chosen,
        "statuses": STATUSES,
        "kinds": ANOMALY_SCOPE_KINDS,
        "back": chosen.query_string(),
        "truncated": truncated,
        "read_at_most": READ_AT_MOST,
    }
    return respond(request, View("anomalies.html", context, [table, suspensions]))


def _back(request: Request) -> RedirectResponse:
    """To the page, with the filters it was on (validated again: the query string is the user's)."""
    return RedirectResponse(f"{PAGE}?{_filters_of(request).query_string()}", status_code=303)


def _status_change(status: str) -> Any:
    async def change(request: Request) -> Response:
        viewer = await require_viewer(request)
        await checked_form(request)
        anomaly_id = request.path_params["anomaly_id"]
        if not _ANOMALY_ID.fullmatch(anomaly_id):
            raise HTTPException(404, "no such anomaly")

        def apply(store: Any) -> None:
            anomaly = _anomaly_or_none(store, anomaly_id)
            if anomaly is None:
                raise HTTPException(404, "no such anomaly")
            keys = {k.name: k for k in store.list_keys()}
            access = _access(store, viewer, keys, anomaly["scope"], anomaly)
            if not access.sees:  # as if it did not exist
                raise HTTPException(404, "no such anomaly")
            if not access.acts:
                raise HTTPException(403, "only org admins and the scope's managers change an anomaly's status")
            try:
                store.set_anomaly_status(anomaly_id, status)
            except StoreError as exc:
                raise HTTPException(400, str(exc)) from exc

        await read(request, apply)
        return _back(request)

    return change


async def resume(request: Request) -> Response:
    viewer = await require_viewer(request)
    form = await checked_form(request)
    text = str(form.get("scope") or "")
    if not text or len(text) > _MAX_SCOPE:
        raise HTTPException(400, f"scope is required, at most {_MAX_SCOPE} characters")
    try:
        scope = Scope.parse(text, ANOMALY_SCOPE_KINDS)
    except BudgetError as exc:
        raise HTTPException(400, str(exc)) from exc

    def apply(store: Any) -> None:
        suspension = next((s for s in store.list_suspensions() if s["scope"] == str(scope)), None)
        if suspension is None:
            raise HTTPException(404, f"{scope} is not suspended")
        keys = {k.name: k for k in store.list_keys()}
        access = _access(store, viewer, keys, str(scope), _anomaly_or_none(store, suspension["anomaly_id"]))
        if not access.sees:
            raise HTTPException(404, f"{scope} is not suspended")
        if not access.acts:
            raise HTTPException(403, "only org admins and the scope's managers resume it")
        try:
            store.resume_scope(scope)
        except StoreError as exc:  # resumed by someone else meanwhile
            raise HTTPException(404, str(exc)) from exc

    await read(request, apply)
    changed = request.app.state.config_changed
    if changed is not None:  # running gateways admit the scope again without waiting
        await changed()
    return _back(request)


PAGES = (
    Page(PAGE, anomalies, nav="Anomalies"),
    Page(f"{PAGE}/resume", resume, methods=("POST",)),
    Page(f"{PAGE}/{{anomaly_id}}/ack", _status_change(ACKNOWLEDGED), methods=("POST",)),
    Page(f"{PAGE}/{{anomaly_id}}/resolve", _status_change(RESOLVED), methods=("POST",)),
)
