"""Flagged windows become anomalies: live, one check at a time (:func:`follow`), and over
history (:func:`scan`), which is the same detector and the same merging run step by step.

Flagged windows less than ``merge_gap_minutes`` apart are one anomaly: a loop that pauses
for a back-off is one incident, reported once. An anomaly runs from the start of the
first window that flagged it to the end of the last; its cost is what that time cost, its
expected cost what the baseline expected of it, its score the highest window score seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from spendgate.anomalies.baseline import HOUR, Baseline, build_baseline, floor_hour, recent_level
from spendgate.anomalies.detector import MINUTE, Check, check_hours, check_live, cost_between, expectation_between
from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.record import RESOLVED, Anomaly

EXPECTED_QUANTUM = Decimal("0.000001")


def follow(
    current: Anomaly | None,
    check: Check,
    *,
    scope: str,
    costs: Mapping[datetime, Decimal],
    baseline: Baseline,
    params: AnomalyParams,
    step: timedelta = MINUTE,
) -> Anomaly | None:
    """The scope's anomaly after ``check``: ``current`` unchanged when the check flagged
    nothing; ``current`` grown to the check when it flagged within the merge gap of its
    end and the spend is still elevated now (its shortest window); else a new anomaly,
    from the start of the shortest flagged window (the caller stores it and alerts once:
    it has a new ``start``).

    ``costs`` are the scope's costs in buckets of ``step`` (minutes live) covering the
    anomaly, from its start to the check; ``baseline`` serves the check's day.
    """
    window, strongest = check.first_flagged, check.strongest
    if window is None or strongest is None:
        return current
    gap = timedelta(minutes=params.merge_gap_minutes)
    if current is None or current.status == RESOLVED or window.start > current.end + gap:
        zero = Decimal(0)
        start, end, score = window.start, check.at, strongest.score
        base = Anomaly(scope, start, end, cost_usd=zero, expected_usd=zero, score=zero)
    elif check.windows[0].ongoing(params):
        start, end, score, base = (
            current.start,
            max(current.end, check.at),
            max(current.score, strongest.score),
            current,
        )
    else:  # only longer windows still hold the anomaly's tail: it is over, leave it be
        return current
    expected, _ = expectation_between(baseline, start, end)
    return replace(
        base,
        start=start,
        end=end,
        cost_usd=cost_between(costs, start, end, step),
        expected_usd=expected.quantize(EXPECTED_QUANTUM, ROUND_HALF_EVEN),
        score=score,
    )


def scan(
    scope: str,
    hourly: Mapping[datetime, Decimal],
    since: datetime,
    until: datetime,
    params: AnomalyParams,
    *,
    minute_costs: Mapping[datetime, Decimal] | None = None,
    history_start: date | None = None,
) -> list[Anomaly]:
    """The anomalies of [since, until), oldest first.

    With ``minute_costs`` (raw events by minute) the live check runs at the end of every
    minute, as ``serve`` would have; without, each complete hour of ``hourly`` is judged
    whole (the only resolution rollups keep). Each day is judged against a baseline built
    from the days before it, so history is judged as it would have been at the time.
    """
    found: list[Anomaly] = []
    current: Anomaly | None = None
    baselines: dict[date, Baseline] = {}
    step = MINUTE if minute_costs is not None else HOUR
    costs = minute_costs if minute_costs is not None else hourly
    at = since.replace(second=0, microsecond=0) if minute_costs is not None else floor_hour(since)
    while at + step <= until:
        end = at + step
        baseline = _baseline_for(baselines, hourly, at, params, history_start)
        baseline = baseline.at_level(recent_level(baseline, hourly, end, params))
        if minute_costs is not None:
            check = check_live(baseline, minute_costs, end, params)
        else:
            check = check_hours(baseline, hourly, end, params)
        updated = follow(current, check, scope=scope, costs=costs, baseline=baseline, params=params, step=step)
        if current is not None and updated is not None and updated.start != current.start:
            found.append(current)
        current = updated
        at = end
    if current is not None:
        found.append(current)
    return found


def _baseline_for(
    cache: dict[date, Baseline],
    hourly: Mapping[datetime, Decimal],
    at: datetime,
    params: AnomalyParams,
    history_start: date | None,
) -> Baseline:
    # A baseline reads complete days only, so it changes once a day: build each day's once.
    day = at.astimezone(ZoneInfo(params.timezone)).date()
    if day not in cache:
        cache.clear()
        cache[day] = build_baseline(hourly, at, params, history_start=history_start)
    return cache[day]
