"""Where the gateway reports budget spend and refusals; alerts come out the other side.

The gateway calls :meth:`AlertCenter.budget_spent` after each request settles and
:meth:`AlertCenter.budget_refused` when a blocking budget turns a request away. Both only
note the observation and return: deciding, storing and sending happen in background tasks,
so the request path never waits on the database or a webhook.

Observations are coalesced per budget window (the latest spend is all that matters, since
crossed thresholds are derived from it; the first refusal is the one worth reporting), and
evaluated at most once per ``evaluate_interval`` (``flush`` and closing do not wait for it):
under steady traffic the gateway pays one evaluation per budget per interval, not one per
request, and memory stays bounded by the number of budgets.
Which alerts this process has already stored is remembered per budget, for its current
window only, so the database is asked once per threshold per process, not per request;
the database's uniqueness then settles races between replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from spendgate.alerts.dispatcher import AlertDispatcher, utc_now
from spendgate.alerts.model import AlertStore
from spendgate.alerts.rules import (
    EXHAUSTED,
    FORECAST_OVERRUN,
    THRESHOLD_CROSSED,
    crossed_thresholds,
    exhausted_payload,
    forecast_overrun,
    forecast_payload,
    new_alert_id,
    threshold_payload,
)
from spendgate.budgets.model import Budget
from spendgate.budgets.windows import Window

log = logging.getLogger("spendgate.alerts")

# Alerts are news within a fraction of a second; evaluating more often only costs CPU.
EVALUATE_INTERVAL_S = 0.05
# A forecast costs ~0.4 ms (thresholds cost microseconds): under steady traffic a budget's is
# judged again after a minute, or sooner once its spend has moved by 1% of its limit.
FORECAST_EVERY_S = 60.0
FORECAST_MOVE = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Observation:
    budget: Budget
    window: Window
    spent: Decimal
    reserved: Decimal | None = None  # set when the budget refused a request
    at: datetime | None = None  # the instant of the request observed (None: the evaluation's)
    exhausted: bool = False  # a refusal because the budget is spent (see BudgetExceeded)
    # When each threshold was first seen crossed, among the observations this one sums up.
    crossed_at: Mapping[int, datetime] = field(default_factory=dict)
    # Filled in at evaluation: extra spend approved for the window, and the scope's daily
    # spend before today (UTC days) for the forecast.
    approved_extra: Decimal = Decimal(0)
    history: Mapping[date, Decimal] = field(default_factory=dict)
    forecast: bool = True  # False: the forecast was judged lately (see FORECAST_EVERY_S)


@dataclass(frozen=True, slots=True)
class NewAlert:
    kind: str
    threshold: int  # 0 when the kind has none
    payload: dict[str, Any]


def alerts_due(
    seen: Observation,
    now: datetime,
    done: Collection[tuple[str, int]] = (),
    new_id: Callable[[datetime], str] = new_alert_id,
) -> list[NewAlert]:
    """The alerts an observation calls for, less the (kind, threshold) pairs in ``done``. Each
    alert carries the instant of the request that caused it (``now`` when it is not known).

    A blocking budget is exhausted once its spend reaches the limit, or when it refuses a request
    because what is left is less than any request costs (``seen.exhausted``): reservations stop
    spend just below the limit, so the 100% threshold (and every lower one not yet sent) is
    crossed then too. A refusal of one request's worst case, with room left for others, is not."""
    budget, window, spent, extra = seen.budget, seen.window, seen.spent, seen.approved_extra
    if seen.reserved is not None and (budget.soft or not seen.exhausted):
        return []  # a soft budget never refuses; a request too large for what is left is no news
    at = seen.at or now
    # Spent once it reaches the effective limit: extra spend approved for the window moves it.
    exhausted = not budget.soft and (seen.exhausted or spent >= budget.limit_usd + extra)
    due = [
        NewAlert(
            THRESHOLD_CROSSED,
            pct,
            threshold_payload(budget, window, pct, spent, at=when, alert_id=new_id(when), approved_extra=extra),
        )
        for pct in crossed_thresholds(budget, spent, exhausted=exhausted)
        if (THRESHOLD_CROSSED, pct) not in done
        for when in (seen.crossed_at.get(pct, at),)
    ]
    if exhausted and (EXHAUSTED, 0) not in done:
        reserved = seen.reserved or Decimal(0)
        payload = exhausted_payload(budget, window, spent, reserved, at=at, alert_id=new_id(at), approved_extra=extra)
        due.append(NewAlert(EXHAUSTED, 0, payload))
    if seen.reserved is None and seen.forecast and (FORECAST_OVERRUN, 0) not in done:
        forecast = forecast_overrun(budget, window, spent, at, seen.history, approved_extra=extra)
        if forecast is not None:
            payload = forecast_payload(
                budget,
                window,
                spent,
                forecast.projected_usd,
                at=at,
                alert_id=new_id(at),
                approved_extra=extra,
                forecast=forecast,
            )
            due.append(NewAlert(FORECAST_OVERRUN, 0, payload))
    return due


class AlertCenter:
    """Call ``budget_spent`` / ``budget_refused`` from the event loop's thread only."""

    def __init__(
        self,
        store: AlertStore,
        dispatcher: AlertDispatcher,
        *,
        clock: Callable[[], datetime] = utc_now,
        evaluate_interval: float = EVALUATE_INTERVAL_S,
        approved_extra: Callable[[Budget, str], Decimal] | None = None,
        history: Callable[[Budget, datetime], Mapping[date, Decimal]] | None = None,
    ) -> None:
        """``approved_extra(budget, window key)``: extra spend approved for the window (the
        gateway's rules); ``history(budget, now)``: the scope's daily spend before today, read
        from the ledger in a worker thread, once per budget and UTC day (it holds only
        complete days), for the forecast overrun."""
        self._approved_extra = approved_extra
        self._history = history
        self._histories: dict[str, tuple[date, Mapping[date, Decimal]]] = {}  # budget -> (day, history)
        # (budget, window) -> (instant, spent) of its last forecast judgement
        self._forecast_judged: dict[tuple[str, str], tuple[datetime, Decimal]] = {}
        self._store = store
        self._interval = evaluate_interval
        self._dispatcher = dispatcher
        self._clock = clock
        # Noted observations as plain tuples (Observation's fields): made into Observations
        # only when evaluated, once per budget window and interval rather than per request.
        self._pending: dict[tuple[str, str, str], tuple] = {}
        # budget name -> (window key, {(kind, threshold)} stored for that window)
        self._recorded: dict[str, tuple[str, set[tuple[str, int]]]] = {}
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # someone waits (flush, close): evaluate without pausing
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # --- the request path: note and return ---------------------------------------------
    def budget_spent(self, budget: Budget, window: Window, spent: Decimal, at: datetime | None = None) -> None:
        key = ("spent", budget.name, window.key)
        earlier = self._pending.get(key)
        crossed = earlier[6] if earlier is not None else {}
        # A crossing's time is that of the first request seen past it, not the evaluation's.
        if at is not None:
            for pct in budget.alert_at:
                if pct not in crossed and spent * 100 >= budget.limit_usd * pct:
                    crossed = {**crossed, pct: at}
        self._pending[key] = (budget, window, spent, None, at, False, crossed)  # the latest wins
        self._idle.clear()
        self._wake.set()

    def budget_refused(
        self,
        budget: Budget,
        window: Window,
        spent: Decimal,
        reserved: Decimal,
        *,
        exhausted: bool = True,
        at: datetime | None = None,
    ) -> None:
        if not exhausted:
            return  # room is left for smaller requests: nothing to tell
        key = ("refused", budget.name, window.key)
        if key not in self._pending:  # the first refusal is the news
            self._pending[key] = (budget, window, spent, reserved, at, True, {})
        self._idle.clear()
        self._wake.set()

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start evaluating, and the dispatcher (from inside the running event loop)."""
        self._dispatcher.start()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spendgate-alerts-evaluate")

    async def flush(self) -> None:
        """Wait until every observation noted so far has been evaluated and its alerts stored."""
        if self._task is None or self._task.done():
            raise RuntimeError("the alert center is not running; call start() first")
        if not self._idle.is_set():
            self._hurry.set()
        await self._idle.wait()

    async def aclose(self) -> None:
        """Evaluate what is still noted, then stop, then close the dispatcher (which sends
        what is due)."""
        self._closing = True
        self._hurry.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._dispatcher.aclose()

    # --- the background side ---------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._interval > 0 and not self._hurry.is_set():
                # Let the observations of a burst gather: one evaluation covers them all.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self._interval)
            self._wake.clear()
            if not self._closing:
                self._hurry.clear()
            batch, self._pending = self._pending, {}
            if batch:
                try:
                    await self._evaluate([Observation(*noted) for noted in batch.values()])
                except Exception:
                    log.exception("budget alert evaluation failed")
            if not self._pending:
                self._idle.set()
                if self._closing:
                    return

    async def _with_context(self, seen: Observation, done: Collection[tuple[str, int]], now: datetime) -> Observation:
        extra = self._approved_extra(seen.budget, seen.window.key) if self._approved_extra else Decimal(0)
        history: Mapping[date, Decimal] = {}
        forecast = seen.reserved is None and (FORECAST_OVERRUN, 0) not in done and self._forecast_due(seen, now)
        if forecast and self._history is not None:
            history = await self._daily_history(seen.budget, now)
        return replace(seen, approved_extra=extra, history=history, forecast=forecast)

    def _forecast_due(self, seen: Observation, now: datetime) -> bool:
        key = (seen.budget.name, seen.window.key)
        last = self._forecast_judged.get(key)
        moved = seen.budget.limit_usd * FORECAST_MOVE
        if last is not None and (now - last[0]).total_seconds() < FORECAST_EVERY_S and seen.spent - last[1] < moved:
            return False
        if len(self._forecast_judged) > 4096:  # windows long past
            self._forecast_judged.clear()
        self._forecast_judged[key] = (now, seen.spent)
        return True

    async def _daily_history(self, budget: Budget, now: datetime) -> Mapping[date, Decimal]:
        assert self._history is not None
        today = now.astimezone(UTC).date()
        cached = self._histories.get(budget.name)
        if cached is None or cached[0] != today:
            if len(self._histories) > 1024:  # budgets deleted long ago
                self._histories.clear()
            try:
                cached = (today, await asyncio.to_thread(self._history, budget, now))
            except Exception:
                log.exception("could not read the spend history of budget %s", budget.name)
                return {}
            self._histories[budget.name] = cached
        return cached[1]

    async def _evaluate(self, batch: Sequence[Observation]) -> None:
        now = self._clock()
        todo: list[tuple[set[tuple[str, int]], NewAlert, Observation]] = []
        for seen in batch:
            done = self._done(seen.budget.name, seen.window.key)
            seen = await self._with_context(seen, done, now)
            todo.extend((done, alert, seen) for alert in alerts_due(seen, now, done))
        if not todo:
            return
        outcomes = await asyncio.to_thread(self._record, [(alert, seen) for _, alert, seen in todo], now)
        for (done, alert, _), outcome in zip(todo, outcomes, strict=True):
            if outcome is not None:  # stored now or earlier, by us or another replica: done
                done.add((alert.kind, alert.threshold))
        if any(outcomes):
            self._dispatcher.wake()

    def _record(self, todo: Sequence[tuple[NewAlert, Observation]], now: datetime) -> list[bool | None]:
        # Runs in a worker thread. None marks a failure, tried again at the next observation.
        outcomes: list[bool | None] = []
        for alert, seen in todo:
            try:
                scope = seen.budget.scope  # a team's budget is also its team's webhooks' business
                new = self._store.record_alert(
                    alert.kind,
                    seen.budget.name,
                    seen.window.key,
                    alert.threshold,
                    alert.payload,
                    now=now,
                    team=scope.value if scope.kind == "team" else None,
                )
            except Exception:
                log.exception("could not store the %s alert of budget %s", alert.kind, seen.budget.name)
                new = None
            outcomes.append(new)
        return outcomes

    def _done(self, budget: str, window_key: str) -> set[tuple[str, int]]:
        # Only the current window is kept: a new window starts with nothing recorded.
        current = self._recorded.get(budget)
        if current is None or current[0] != window_key:
            current = (window_key, set())
            self._recorded[budget] = current
        return current[1]
