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
from spendgate.anomalies.record import EXPECTED_QUANTUM, RESOLVED, Anomaly


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
    """The scope's anomaly after ``check``.

    - ``current`` unchanged when the check flagged nothing, or when the spend is no
      longer at an anomaly's rate now (``WindowCheck.ongoing`` of its shortest window):
      an hour-long window goes on flagging for up to an hour after a loop stops, because
      the loop is still in it; that echo neither extends an anomaly nor starts one;
    - ``current`` grown to the check when it is within ``merge_gap_minutes`` of its end;
    - else a new anomaly (the caller stores it and alerts once: it has a new ``start``),
      from the start of the shortest flagged window (after an earlier anomaly: of the
      shortest window, and never before that one ended).

    ``costs`` are the scope's costs in buckets of ``step`` (minutes live) covering the
    anomaly, from its start to the check; ``baseline`` serves the check's day.
    """
    window, strongest = check.first_flagged, check.strongest
    if window is None or strongest is None or not check.windows[0].ongoing(params):
        return current
    # Checks a step apart are contiguous whatever the gap (an hourly scan's are an hour).
    gap = max(timedelta(minutes=params.merge_gap_minutes), step)
    if current is None or current.status == RESOLVED or check.at > current.end + gap:
        zero = Decimal(0)
        # After an earlier anomaly, longer windows still hold it: start from the recent one.
        start = window.start if current is None else max(check.windows[0].start, current.end)
        end, score = check.at, strongest.score
        base = Anomaly(scope, start, end, cost_usd=zero, expected_usd=zero, score=zero)
    else:
        start, end, base = current.start, max(current.end, check.at), current
        score = max(current.score, strongest.score)
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
    minute, as ``serve`` would have; without, at the end of every hour over the last
    ``hourly_window_hours`` of ``hourly`` (the only resolution rollups keep). Each day is
    judged against a baseline built from the days before it, at the level of the hours
    before, so history is judged as it would have been at the time.
    """
    found: list[Anomaly] = []
    current: Anomaly | None = None
    baselines: dict[date, Baseline] = {}
    step = MINUTE if minute_costs is not None else HOUR
    costs = minute_costs if minute_costs is not None else hourly
    at = since.replace(second=0, microsecond=0) if minute_costs is not None else floor_hour(since)
    levelled: tuple[Baseline, datetime, Baseline] | None = None  # (daily, hour, at its level)
    while at + step <= until:
        end = at + step
        daily = _baseline_for(baselines, hourly, at, params, history_start)
        if levelled is None or levelled[0] is not daily or levelled[1] != floor_hour(end):
            # The level reads complete hours: it changes once an hour.
            levelled = (daily, floor_hour(end), daily.at_level(recent_level(daily, hourly, end, params)))
        baseline = levelled[2]
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
