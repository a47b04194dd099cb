"""``spendgate anomalies scan``: the detector over history, from the hourly rollups.

The same detector and merging as live (``anomalies.episodes.scan``), judged hour by hour:
each day against a baseline of the days before it, so history is judged as it would have
been at the time. Rollups keep hours, not minutes, so a scan needs two hours of evidence
(``hourly_window_hours``) where serve needs minutes; what it finds is recorded (source
``scan``, no webhook: nobody is paged about last month) and merged with what serve
recorded live for the same spike.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from spendgate.alerts.rules import new_alert_id
from spendgate.anomalies.baseline import floor_hour
from spendgate.anomalies.episodes import scan
from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.traces import build_reference
from spendgate.budgets.model import Scope
from spendgate.reports.spec import ReportQuery
from spendgate.watch.scopes import RUN_SCOPE_KINDS, WATCHED_DIMENSIONS, baseline_rule_scopes


def scopes_with_spend(store: Any, since: date, until: date, rule_scopes: list[str]) -> list[Scope]:
    found: dict[str, Scope] = {"org": Scope("org")}
    for scope in baseline_rule_scopes(rule_scopes):
        found.setdefault(str(scope), scope)
    for dim in WATCHED_DIMENSIONS:
        for row in store.report(ReportQuery(by=(dim,), since=since, until=until)).rows:
            value = row.dims[dim]
            if value and row.cost_usd > 0:
                found.setdefault(f"{dim}:{value}", Scope(dim, value))
    return sorted(found.values(), key=str)


def scan_history(
    store: Any, since: date, until: date, now: datetime, params: AnomalyParams, *, record: bool = True
) -> list[dict[str, Any]]:
    """The anomalies of the days [since, until] in every watched scope, oldest first."""
    start = datetime.combine(since, time(), UTC)
    end = min(datetime.combine(until + timedelta(days=1), time(), UTC), floor_hour(now))
    rule_scopes = [r["scope"] for r in store.list_anomaly_rules()]
    # Features and customers are judged with the floor of their runs (``AnomalyParams.for_runs``).
    traces = params.traces
    totals = store.trace_totals(start - timedelta(days=traces.reference_days), end, traces.max_reference_traces)
    run_params = params.for_runs(build_reference(totals, traces).for_trace(None, None))
    found: list[dict[str, Any]] = []
    for scope in scopes_with_spend(store, since, until, rule_scopes):
        hourly = store.hourly_costs(scope, since - timedelta(days=params.lookback_days + 1), until)
        judged = run_params if scope.kind in RUN_SCOPE_KINDS else params
        for anomaly in scan(str(scope), hourly, start, end, judged):
            anomaly_id = ""
            if record:
                anomaly_id, _, _ = store.record_anomaly(
                    anomaly,
                    merge_gap=timedelta(minutes=params.merge_gap_minutes),
                    source="scan",
                    now=now,
                    alert_id=new_alert_id(now),
                )
            found.append({"id": anomaly_id or None, **anomaly.to_json()})
    found.sort(key=lambda a: (a["start"], a["scope"]))
    return found
