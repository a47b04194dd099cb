"""Runaway traces: one agent run (a trace id) spending far beyond what runs of its kind
spend (pure).

A trace has no weekday history (every run is a new trace id), so the seasonal baseline
the scopes use cannot judge it. What a trace CAN be compared with is the other traces of
the same feature: the distribution of past traces' total costs. The rule, chosen to be
simple and hard to fool:

- **floor**: below ``min_cost_usd`` ($1) nothing is flagged (as no scope window is).
- **cost**: total >= ``cost_multiple`` (10) x the ``cost_percentile`` (99th) of past
  traces' totals in its group. A percentile, not a mean or a max: past runaways (up to 1%
  of the traces) do not move it, and one huge legitimate run does not blind it.
- **rate**: the trace sent >= ``rate_per_minute`` (10) requests in each of
  ``rate_minutes`` (3) consecutive minutes AND its total is already over that percentile.
  A loop is fast and sustained; requiring the percentile too keeps a legitimately fast
  agent (whose feature's runs are all long and dear) from being flagged for its pace.

The group is the trace's feature, else its project, else every trace (the first with
``min_reference_traces`` past traces); with none, the cost threshold is
``no_reference_cost_usd`` and the rate branch needs only the floor. A trace's cost is
what it spent in the events the caller passes (live: the last hour, and since the
anomaly's start once flagged), so a loop is judged while it runs, not once it ends.

The anomaly's ``expected_usd`` is the percentile (what a run of its kind stays under),
its ``score`` the total over that percentile (how many times the 99th percentile).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate.anomalies.detector import SCORE_QUANTUM, floor_minute
from spendgate.anomalies.params import TraceParams

ZERO = Decimal(0)
ALL_TRACES = "org"


def reference_groups(feature: str | None, project: str | None) -> tuple[str, ...]:
    """Where a trace's typical cost is looked up, most specific first."""
    groups = []
    if feature:
        groups.append(f"feature:{feature}")
    if project:
        groups.append(f"project:{project}")
    groups.append(ALL_TRACES)
    return tuple(groups)


def percentile(values: Sequence[Decimal], q: int) -> Decimal:
    """Nearest-rank percentile of sorted ``values`` (exact: one of the values)."""
    rank = max(1, -(-len(values) * q // 100))  # ceil(n * q / 100)
    return values[rank - 1]


@dataclass(frozen=True, slots=True)
class TraceReference:
    """Each group's ``cost_percentile`` of past trace totals (groups with enough traces)."""

    typical: Mapping[str, Decimal] = field(default_factory=dict)

    def for_trace(self, feature: str | None, project: str | None) -> Decimal | None:
        for group in reference_groups(feature, project):
            if group in self.typical:
                return self.typical[group]
        return None


def build_reference(totals: Iterable[tuple[str | None, str | None, Decimal]], params: TraceParams) -> TraceReference:
    """From past traces' (feature, project, total cost)."""
    by_group: dict[str, list[Decimal]] = {}
    for feature, project, total in totals:
        for group in reference_groups(feature, project):
            by_group.setdefault(group, []).append(total)
    typical = {
        group: percentile(sorted(costs), params.cost_percentile)
        for group, costs in by_group.items()
        if len(costs) >= params.min_reference_traces
    }
    return TraceReference(typical)


@dataclass(frozen=True, slots=True)
class TraceVerdict:
    trace: str
    start: datetime  # the minute of its first request read
    cost: Decimal
    typical: Decimal | None  # the group's percentile (None: no group had enough traces)
    sustained_minutes: int  # the longest run of minutes at >= rate_per_minute requests
    reason: str | None  # "cost", "rate" or None (not runaway)

    @property
    def flagged(self) -> bool:
        return self.reason is not None

    @property
    def score(self) -> Decimal:
        if not self.typical:
            return ZERO
        return (self.cost / self.typical).quantize(SCORE_QUANTUM)


def longest_sustained(minute_counts: Mapping[datetime, int], rate: int) -> int:
    """The most consecutive minutes with at least ``rate`` requests each."""
    best, run, previous = 0, 0, None
    for minute in sorted(m for m, n in minute_counts.items() if n >= rate):
        run = run + 1 if previous is not None and (minute - previous).total_seconds() == 60 else 1
        best, previous = max(best, run), minute
    return best


def judge_trace(
    trace: str, calls: Sequence[tuple[datetime, Decimal]], typical: Decimal | None, params: TraceParams
) -> TraceVerdict:
    """One trace's requests read (instant, cost) against its group's ``typical`` cost."""
    cost = sum((c for _, c in calls), ZERO)
    counts: dict[datetime, int] = {}
    for at, _ in calls:
        minute = floor_minute(at)
        counts[minute] = counts.get(minute, 0) + 1
    sustained = longest_sustained(counts, params.rate_per_minute)
    start = min(counts) if counts else floor_minute(datetime.min)
    reason = None
    if cost >= params.min_cost_usd:
        threshold = params.no_reference_cost_usd if typical is None else typical * params.cost_multiple
        if cost >= threshold:
            reason = "cost"
        elif sustained >= params.rate_minutes and (typical is None or cost > typical):
            reason = "rate"
    return TraceVerdict(trace, start, cost, typical, sustained, reason)


def runaway_traces(
    events: Iterable[Mapping[str, Any]], reference: TraceReference, params: TraceParams
) -> list[tuple[TraceVerdict, list[Mapping[str, Any]]]]:
    """The flagged traces among ``events`` (each with ``ts``, ``cost``, ``trace``,
    ``feature``, ``project``), each with its events, dearest first."""
    by_trace: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        trace = event.get("trace")
        if trace:
            by_trace.setdefault(trace, []).append(event)
    flagged = []
    for trace, mine in by_trace.items():
        if sum((e["cost"] for e in mine), ZERO) < params.min_cost_usd:
            continue  # most traces: never worth a lookup
        feature = next((e["feature"] for e in mine if e.get("feature")), None)
        project = next((e["project"] for e in mine if e.get("project")), None)
        verdict = judge_trace(
            trace, [(e["ts"], e["cost"]) for e in mine], reference.for_trace(feature, project), params
        )
        if verdict.flagged:
            flagged.append((verdict, mine))
    flagged.sort(key=lambda item: (-item[0].cost, item[0].trace))
    return flagged
