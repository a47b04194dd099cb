"""``serve``'s runaway-trace check (``anomalies.traces``): the events the live check read,
grouped by trace and judged against past traces of the same feature; each runaway becomes
an anomaly on ``trace:<id>`` whose drivers are its features, keys and models.

The reference (past traces' totals) is read once a day, from the ``reference_days`` before
today: one grouped query over a week of raw events, off the request path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from spendgate.anomalies.drivers import rank_drivers
from spendgate.anomalies.params import TraceParams
from spendgate.anomalies.record import EXPECTED_QUANTUM, Anomaly
from spendgate.anomalies.traces import TraceReference, TraceVerdict, build_reference, runaway_traces

TRACE_DRIVER_DIMENSIONS = ("feature", "key", "model")


def trace_anomaly(verdict: TraceVerdict, events: Sequence[Mapping[str, Any]], now: datetime) -> Anomaly:
    """The anomaly of a runaway trace: its cost so far against what a run of its kind
    stays under; every feature, key and model it spent on is a driver (a trace has no usual
    shares: all of it is excess)."""
    breakdown: dict[str, dict[str, Decimal]] = {dim: {} for dim in TRACE_DRIVER_DIMENSIONS}
    for event in events:
        for dim in TRACE_DRIVER_DIMENSIONS:
            value = event.get(dim)
            if value:
                breakdown[dim][value] = breakdown[dim].get(value, Decimal(0)) + event["cost"]
    expected = (verdict.typical or Decimal(0)).quantize(EXPECTED_QUANTUM, ROUND_HALF_EVEN)
    anomaly = Anomaly(f"trace:{verdict.trace}", verdict.start, now, verdict.cost, expected, verdict.score)
    return anomaly.with_drivers(rank_drivers(breakdown, {}, Decimal(0)))


class TraceWatch:
    """The reference cache of one live detector (one per process)."""

    def __init__(self, store: Any, params: TraceParams) -> None:
        self.store = store
        self.params = params
        self._reference: tuple[date, TraceReference] | None = None

    def reference(self, now: datetime) -> TraceReference:
        today = now.date()
        if self._reference is None or self._reference[0] != today:
            until = datetime.combine(today, time(), now.tzinfo)
            since = until - timedelta(days=self.params.reference_days)
            totals = self.store.trace_totals(since, until, self.params.max_reference_traces)
            self._reference = (today, build_reference(totals, self.params))
        return self._reference[1]

    def runaways(self, events: Sequence[Mapping[str, Any]], now: datetime) -> list[Anomaly]:
        """An anomaly for each runaway trace among ``events``, dearest first."""
        params = self.params
        costs: dict[str, Decimal] = {}
        for event in events:
            trace = event.get("trace")
            if trace:
                costs[trace] = costs.get(trace, Decimal(0)) + event["cost"]
        # Only a trace past the dollar floor needs the reference: most checks have none.
        if not any(cost >= params.min_cost_usd for cost in costs.values()):
            return []
        flagged = runaway_traces(events, self.reference(now), params)
        return [trace_anomaly(verdict, mine, now) for verdict, mine in flagged]
