"""Recording spend that happened elsewhere: the ledger and the live budget counters, together.

Every door (the usage API, OTLP, the CLI's files and other costs) ends here. Events go through
the gateway's writer (spooled, batched with proxied traffic) and the door learns which were
new; only those are added to the budget counters, so a record sent twice counts once
everywhere. The counters are opened before the events reach the ledger (a counter loaded from
the ledger afterwards would count them twice) and settled with what was actually new.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal

from spendgate.attribution import Attribution
from spendgate.budgets.enforcer import Admission, Enforcer
from spendgate.ledger.events import EventIds, UsageEvent
from spendgate.ledger.spool.writer import Stored

log = logging.getLogger("spendgate.ingest")

StoreEvents = Callable[[Sequence[UsageEvent]], Awaitable[Stored]]


def owner_of(event: UsageEvent) -> Attribution:
    return Attribution(
        project=event.project,
        team=event.team,
        cost_center=event.cost_center,
        environment=event.environment,
        key=event.key,
        feature=event.feature,
        customer=event.customer,
        trace_id=event.trace_id,
        tags=event.tags,
    )


class Recorder:
    """Stores events from outside the proxy and counts the new ones against live budgets."""

    def __init__(self, store_events: StoreEvents, enforcer: Enforcer | None, clock: Callable[[], datetime]) -> None:
        self.store_events = store_events
        self.enforcer = enforcer
        self.clock = clock
        self._ids = EventIds()

    async def record(self, events: Sequence[UsageEvent]) -> Stored:
        """Store ``events`` (distinct ids): which were new to the ledger, which it refused."""
        if not events:
            return Stored()
        opened = await self._open(events)
        try:
            stored = await self.store_events(events)
        except BaseException:
            for admission, _ in opened:
                await self._release(admission)
            raise
        assert self.enforcer is not None or not opened
        for admission, group in opened:
            spent = [e for e in group if e.id in stored.new]
            cost = sum((e.cost_usd for e in spent if e.cost_usd is not None), Decimal(0))
            try:
                await self.enforcer.settle(admission, cost, 0, at=max((e.ts for e in spent), default=None))  # type: ignore[union-attr]
            except Exception:
                log.exception("could not add recorded spend to the budget counters; they are rebuilt from the ledger")
                await self._release(admission)
        return stored

    async def _open(self, events: Sequence[UsageEvent]) -> list[tuple[Admission, list[UsageEvent]]]:
        """One reservation of nothing per set of budget windows the events are charged to."""
        enforcer = self.enforcer
        if enforcer is None or not enforcer.rules.budgets:
            return []
        now = self.clock()
        groups: dict[tuple[str, ...], tuple[list, list[UsageEvent]]] = {}
        for event in events:
            charged = enforcer.recorded_charges(owner_of(event), event.ts, now)
            if charged:
                counters = tuple(charge.counter for _, _, charge in charged)
                groups.setdefault(counters, (charged, []))[1].append(event)
        opened = []
        try:
            for charged, group in groups.values():
                admission = await enforcer.open_recorded(self._ids(now), charged, now)
                opened.append((admission, group))
        except BaseException:
            for admission, _ in opened:
                await self._release(admission)
            raise
        return opened

    async def _release(self, admission: Admission) -> None:
        assert self.enforcer is not None
        try:
            await self.enforcer.release(admission)
        except Exception:
            log.exception("could not release budget reservation %s", admission.request_id)
