"""False positives of the detector on the end-to-end test's history (tests/test_anomalies_live.py).

    PYTHONPATH=. python bench/anomaly_history_fp.py [--seed 7] [--days 45] [--only customer:]

The same synthetic history (seed, shape, start) the test writes through the store, judged
per watched scope (org, each key, feature and customer) two ways: as `serve` judges it live
(a check at the end of every minute, from day 8: ``episodes.scan`` with minute costs) and as
`spendgate anomalies scan` judges it from the hourly rollups; and every trace from day 8 by
the runaway-trace rule (``anomalies.traces``) against the traces of the 7 days before its
day. Features and customers are judged with the floor of their runs
(``AnomalyParams.for_runs``: twice the 99th percentile of a trace's cost over the last week),
as serve judges them. Every anomaly here is a false positive: the history has no loop. Pure: no database (the
test checks the wiring on both backends).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal

from tests.test_anomalies_live import NOW0, SHAPE, START

from spendgate.anomalies import synthetic as syn
from spendgate.anomalies.episodes import scan
from spendgate.anomalies.params import AnomalyParams, TraceParams
from spendgate.anomalies.traces import TraceReference, build_reference, judge_trace


def main(seed: int, days: int, only: str = "") -> None:
    params = AnomalyParams()
    requests = [r for r in syn.synthetic_requests(seed, START, days + 1, SHAPE) if r.at < NOW0]
    scopes: dict[str, Callable[[syn.SyntheticRequest], bool]] = {"org": lambda r: True}
    for key in SHAPE.keys:
        scopes[f"key:{key}"] = lambda r, key=key: r.key == key
    for feature in SHAPE.features:
        scopes[f"feature:{feature}"] = lambda r, feature=feature: r.feature == feature
    for customer in SHAPE.customers:
        scopes[f"customer:{customer}"] = lambda r, customer=customer: r.customer == customer
    since = START + timedelta(days=params.min_history_days + 1)
    # Features and customers: the floor of their runs (serve reads the last week's traces).
    totals: dict[str, Decimal] = {}
    for r in requests:
        if NOW0 - timedelta(days=params.traces.reference_days) <= r.at:
            totals[r.trace] = totals.get(r.trace, Decimal(0)) + r.cost
    typical_run = build_reference([(None, None, t) for t in totals.values()], params.traces).for_trace(None, None)
    run_params = params.for_runs(typical_run)
    print(f"runs: 99th percentile of a trace's cost ${typical_run}, floor ${run_params.min_impact_usd}")
    print(f"{len(requests)} requests, {days} days, judged from {since:%Y-%m-%d} to {NOW0:%Y-%m-%d %H:%M}; {params}")
    for name, mine in scopes.items():
        if not name.startswith(only):
            continue
        own = [r for r in requests if mine(r)]
        hourly, minutes = syn.per_hour(own), syn.per_minute(own)
        began = time.perf_counter()
        judged = run_params if name.startswith(("feature:", "customer:")) else params
        live = scan(name, hourly, since, NOW0, judged, minute_costs=minutes)
        by_hour = scan(name, hourly, since, NOW0, judged)
        took = time.perf_counter() - began
        mean_hour = sum(hourly.values()) / (days * 24)
        print(
            f"{name:<18} ~${mean_hour:.2f}/h  live (every minute): {len(live)} false positives"
            f"  hourly scan: {len(by_hour)}  ({took:.1f} s)"
        )
        for anomaly in live + by_hour:
            print("   ", anomaly.to_json())
    judge_traces(requests, since, params.traces)


def judge_traces(requests: list[syn.SyntheticRequest], since: datetime, params: TraceParams) -> None:
    """Every trace that began after ``since``, whole, against the week before its day."""
    by_trace: dict[str, list[syn.SyntheticRequest]] = {}
    for request in requests:
        by_trace.setdefault(request.trace, []).append(request)
    began = time.perf_counter()
    references: dict[date, TraceReference] = {}
    judged, flagged = 0, []
    for trace, calls in by_trace.items():
        day = calls[0].at.date()
        if calls[0].at < since:
            continue
        if day not in references:
            week = [c for c in by_trace.values() if day - timedelta(days=params.reference_days) <= c[0].at.date() < day]
            totals = [(c[0].feature, "support", sum((r.cost for r in c), Decimal(0))) for c in week]
            references[day] = build_reference(totals, params)
        typical = references[day].for_trace(calls[0].feature, "support")
        verdict = judge_trace(trace, [(r.at, r.cost) for r in calls], typical, params)
        judged += 1
        if verdict.flagged:
            flagged.append(verdict)
    took = time.perf_counter() - began
    print(f"{'traces':<18} {judged} judged: {len(flagged)} false positives  ({took:.1f} s)")
    for verdict in flagged:
        print("   ", verdict)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--only", default="", help="judge only the scopes starting with this (e.g. customer:)")
    args = parser.parse_args()
    main(args.seed, args.days, args.only)
