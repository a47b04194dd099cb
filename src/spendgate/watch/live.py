"""``serve``'s live anomaly check: every ``interval`` seconds, the last hour of the ledger
by minute, judged per watched scope against its baseline (``anomalies.detector``).

Every replica runs it; the store makes the outcome exact (``record_anomaly``): an anomaly
is recorded, its ``spend.anomaly`` webhook sent and its scope suspended once, whichever
replica saw it first. The clock is the app's (injected in tests). Baselines are built once
per scope and day, the hourly series they and the level read once per scope and hour; a
scope whose last hour cost less than the smallest anomaly is skipped without a check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.alerts.rules import new_alert_id
from spendgate.anomalies.baseline import HOUR, Baseline, build_baseline, floor_hour, recent_level
from spendgate.anomalies.detector import check_live, minute_series
from spendgate.anomalies.drivers import rank_drivers
from spendgate.anomalies.episodes import follow
from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.record import Anomaly
from spendgate.budgets.model import Scope
from spendgate.watch.scopes import DRIVER_DIMENSIONS, RUN_SCOPE_KINDS, events_by_scope, watched_scopes
from spendgate.watch.traces import TraceWatch

log = logging.getLogger("spendgate.anomalies")
# An anomaly followed live reads its whole span by minute; a day is the most read at once.
MAX_FOLLOW = timedelta(days=1)


def actual_breakdown(
    events: Sequence[Mapping[str, Any]], start: datetime, end: datetime
) -> dict[str, dict[str, Decimal]]:
    result: dict[str, dict[str, Decimal]] = {dim: {} for dim in DRIVER_DIMENSIONS}
    for event in events:
        if start <= event["ts"] < end:
            for dim in DRIVER_DIMENSIONS:
                value = event.get(dim)
                if value:
                    result[dim][value] = result[dim].get(value, Decimal(0)) + event["cost"]
    return result


class LiveDetector:
    def __init__(
        self,
        store: Any,
        clock: Callable[[], datetime],
        params: AnomalyParams,
        *,
        interval: float = 30.0,
        trace_suspension: timedelta = timedelta(hours=24),
        before_check: Callable[[], Any] | None = None,
        on_recorded: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.params = params
        self.interval = interval
        self.trace_suspension = trace_suspension  # how long a runaway trace stays suspended
        self.traces = TraceWatch(store, params.traces)
        self.before_check = before_check  # async: write what this process buffered first
        self.on_recorded = on_recorded  # wake the webhook dispatcher
        self._baselines: dict[str, tuple[date, Baseline]] = {}
        self._hourly: dict[str, tuple[datetime, dict[datetime, Decimal]]] = {}
        self._usual: dict[str, tuple[date, dict[str, dict[str, Decimal]]]] = {}
        self._current: dict[str, Anomaly] = {}
        self._task: asyncio.Task[None] | None = None

    # --- one check (sync: runs in a thread) ----------------------------------------------
    def check_once(self, now: datetime | None = None) -> list[tuple[str, bool]]:
        """Check every watched scope at ``now``; the (anomaly id, newly recorded) of each
        anomaly recorded or grown."""
        now = now or self.clock()
        since = now - HOUR - timedelta(minutes=1)
        for current in self._current.values():
            since = min(since, max(current.start, now - MAX_FOLLOW))
        events = self.store.recent_events(since, now)
        rules = self.store.list_anomaly_rules()
        recorded: list[tuple[str, bool]] = []
        hour_ago = now - HOUR
        scopes = watched_scopes([r["scope"] for r in rules], (e for e in events if e["ts"] >= hour_ago))
        scope_events = events_by_scope(scopes, events)
        for scope in scopes:
            key = str(scope)
            mine = scope_events[key]
            judged = self._params_for(scope, now)
            last_hour = sum((e["cost"] for e in mine if e["ts"] >= hour_ago), Decimal(0))
            if last_hour < judged.min_impact_usd and key not in self._current:
                continue  # cannot reach the absolute floor: no baseline needed
            minutes = minute_series([(e["ts"], e["cost"]) for e in mine])
            baseline, hourly = self._baseline(scope, now)
            levelled = baseline.at_level(recent_level(baseline, hourly, now, judged))
            check = check_live(levelled, minutes, now, judged)
            current = self._current.get(key)
            updated = follow(current, check, scope=key, costs=minutes, baseline=levelled, params=judged)
            if updated is None or updated == current:
                continue
            self._current[key] = updated  # followed without its drivers: they are derived each time
            drivers = rank_drivers(
                actual_breakdown(mine, updated.start, updated.end), self._usual_of(scope, now), updated.expected_usd
            )
            recorded.append(self._record(updated.with_drivers(drivers), now))
        for runaway in self.traces.runaways(events, now):
            current = self._current.get(runaway.scope)
            if current is not None:
                if runaway.cost_usd <= current.cost_usd:
                    continue  # nothing spent since (suspended, or stopped): nothing to grow
                # The same run, followed: it began when it was first flagged, or earlier.
                runaway = replace(runaway, start=min(current.start, runaway.start))
            self._current[runaway.scope] = runaway
            recorded.append(self._record(runaway, now))
        # Anomalies no longer followable are forgotten (the store keeps them); a trace once
        # its last spend is out of the hour read (a run that stopped does not start again, and
        # following it would read its whole span every check); lapsed trace suspensions are
        # deleted (every gateway reloads without them).
        quiet = now - HOUR - timedelta(minutes=1)
        for key, anomaly in list(self._current.items()):
            if anomaly.end < now - MAX_FOLLOW or (key.startswith("trace:") and anomaly.end < quiet):
                del self._current[key]
        self.store.expire_suspensions(now)
        return recorded

    def _params_for(self, scope: Scope, now: datetime) -> AnomalyParams:
        if scope.kind not in RUN_SCOPE_KINDS:
            return self.params
        return self.params.for_runs(self.traces.reference(now).for_trace(None, None))

    def _record(self, anomaly: Anomaly, now: datetime) -> tuple[str, bool]:
        anomaly_id, new, suspended = self.store.record_anomaly(
            anomaly,
            merge_gap=timedelta(minutes=self.params.merge_gap_minutes),
            source="live",
            now=now,
            alert_id=new_alert_id(now),
            trace_suspension=self.trace_suspension,
        )
        if new:
            log.warning(
                "spend anomaly %s on %s: $%s where $%s was expected%s",
                anomaly_id,
                anomaly.scope,
                anomaly.cost_usd,
                anomaly.expected_usd,
                " (scope suspended)" if suspended else "",
            )
        return anomaly_id, new

    def _baseline(self, scope: Scope, now: datetime) -> tuple[Baseline, dict[datetime, Decimal]]:
        key, hour, today = str(scope), floor_hour(now), now.date()
        cached = self._hourly.get(key)
        if cached is None or cached[0] != hour:
            since = today - timedelta(days=self.params.lookback_days + 1)
            cached = (hour, self.store.hourly_costs(scope, since, today))
            self._hourly[key] = cached
        built = self._baselines.get(key)
        if built is None or built[0] != today:
            built = (today, build_baseline(cached[1], now, self.params))
            self._baselines[key] = built
        return built[1], cached[1]

    def _usual_of(self, scope: Scope, now: datetime) -> dict[str, dict[str, Decimal]]:
        key, today = str(scope), now.date()
        cached = self._usual.get(key)
        if cached is None or cached[0] != today:
            since = today - timedelta(days=self.params.lookback_days)
            dims = [d for d in DRIVER_DIMENSIONS if d != "trace"]  # every run is a new trace
            cached = (today, self.store.usual_breakdown(scope, since, today - timedelta(days=1), dims))
            self._usual[key] = cached
        return cached[1]

    # --- the background task -------------------------------------------------------------
    async def check(self) -> list[tuple[str, bool]]:
        if self.before_check is not None:
            await self.before_check()
        found = await asyncio.to_thread(self.check_once, self.clock())
        if any(new for _, new in found) and self.on_recorded is not None:
            self.on_recorded()
        return found

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                log.exception("anomaly check failed; trying again in %.0f s", self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spendgate-anomalies")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
