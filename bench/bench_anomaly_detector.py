"""Microseconds per call of the anomaly detector's pure parts, on one realistic scope.

What ``serve`` would pay per scope: ``build_baseline`` once a day, ``recent_level`` once an
hour (or per check), ``check_live`` per check (every minute, say), ``follow`` per check,
``rank_drivers`` once per anomaly; and a day's history scan at minute resolution, the
forecast of a month, a learned reservation from 2,000 samples.

Run: python bench/bench_anomaly_detector.py
"""

from __future__ import annotations

import random
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.anomalies.baseline import build_baseline, recent_level
from spendgate.anomalies.detector import check_live, expectation_between
from spendgate.anomalies.drivers import rank_drivers
from spendgate.anomalies.episodes import follow, scan
from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.synthetic import (
    ScopeShape,
    breakdown,
    per_hour,
    per_minute,
    runaway_loop,
    synthetic_requests,
)
from spendgate.budgets.forecast import forecast_window
from spendgate.budgets.output_model import OutputModelParams, learned_tokens
from spendgate.budgets.windows import window_for

START = datetime(2026, 1, 5, tzinfo=UTC)
NOW = datetime(2026, 2, 18, 10, 21, 30, tzinfo=UTC)


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    params = AnomalyParams()
    requests = synthetic_requests(1, START, 45, ScopeShape())
    hourly = per_hour(requests)
    daily_base = build_baseline(hourly, NOW, params)
    baseline = daily_base.at_level(recent_level(daily_base, hourly, NOW, params))
    loop_start = NOW - timedelta(minutes=4)
    loop = runaway_loop(1, loop_start, 60, baseline.for_hour(NOW).expected * 10)
    quiet = per_minute(requests)
    looping = per_minute(requests + loop)
    flagged = check_live(baseline, looping, NOW, params)
    assert flagged.flagged and not check_live(baseline, quiet, NOW, params).flagged
    dims = ("key", "model", "feature", "trace")
    actual = breakdown(requests + loop, loop_start, NOW, dims)
    usual = breakdown(requests, NOW - timedelta(days=30), NOW.replace(hour=0, minute=0), dims)
    expected_total, _ = expectation_between(baseline, loop_start, NOW)
    day = NOW.replace(hour=0, minute=0, second=0)
    daily = {}
    for r in requests:
        daily[r.at.date()] = daily.get(r.at.date(), Decimal(0)) + r.cost
    month = window_for("month", "UTC", NOW)
    spent = sum((r.cost for r in requests if month.start <= r.at < NOW), Decimal(0))
    rng = random.Random(1)
    samples = [int(rng.lognormvariate(6, 0.8)) for _ in range(2_000)]

    rows = [
        ("build_baseline (per scope, once a day)", lambda: build_baseline(hourly, NOW, params), 20),
        ("recent_level (per scope, once an hour)", lambda: recent_level(daily_base, hourly, NOW, params), 2_000),
        ("check_live, quiet scope (per scope per check)", lambda: check_live(baseline, quiet, NOW, params), 2_000),
        ("check_live, looping scope", lambda: check_live(baseline, looping, NOW, params), 2_000),
        (
            "follow, flagged check (per scope per check)",
            lambda: follow(None, flagged, scope="key:k", costs=looping, baseline=baseline, params=params),
            2_000,
        ),
        ("rank_drivers, 4 dimensions (per anomaly)", lambda: rank_drivers(actual, usual, expected_total), 200),
        (
            "scan, one day at minute resolution",
            lambda: scan("key:k", hourly, day, day + timedelta(days=1), params, minute_costs=quiet),
            2,
        ),
        ("forecast_window, a month", lambda: forecast_window(daily, spent, month, "UTC", NOW), 200),
        ("learned_tokens, 2,000 samples", lambda: learned_tokens(samples, 16_384, OutputModelParams()), 200),
    ]
    for name, fn, number in rows:
        print(f"{name:48s} {per_call_us(fn, number):12.1f} us")


if __name__ == "__main__":
    main()
