"""Recording usage records from a process other than the gateway (``spendgate ingest``,
``spendgate costs add``, ``spendgate import provider``): the doors' own code — records built by
ingest/records.py, stored with the writer's isolation, counted by ingest/service.py's Recorder
against the shared (Redis) budget counters when there are any."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spendgate.ledger.store import Store


def price_book(settings: Any) -> Any:
    """The gateway's price book for these settings (overrides and configured providers)."""
    from spendgate.gateway.upstream import Upstreams
    from spendgate.pricing import PriceBook, load_overrides

    overrides = load_overrides(settings.prices) if settings.prices else ()
    return PriceBook(overrides, genai_provider_ids=Upstreams(settings).genai_provider_ids)


@contextlib.asynccontextmanager
async def live_budgets(store: Store, settings: Any) -> Any:
    """The budget counters the gateways enforce with, when they are shared (Redis): spend this
    process records counts there at once. Without Redis each gateway keeps its own counters,
    which reload from the ledger when told (``spend_written_elsewhere``). Yields an Enforcer or None."""
    if not settings.redis_url:
        yield None
        return
    from spendgate.budgets.enforcer import Enforcer
    from spendgate.budgets.redis_counters import RedisGate, ledger_namespace

    async def ledger_spend(scope: Any, window: Any) -> Any:
        return await asyncio.to_thread(store.spend, scope, window.start, window.end)

    # The gateways' own namespace (this ledger's identity unless one is configured).
    namespace = ledger_namespace(settings.redis_namespace, await asyncio.to_thread(store.ledger_id))
    enforcer = Enforcer(await RedisGate.connect(settings.redis_url, namespace=namespace), ledger_spend)
    enforcer.rules = store.load_rules()
    try:
        yield enforcer
    finally:
        await enforcer.gate.close()


@dataclass
class BatchOutcome:
    events: list[Any]  # the events of the records that were valid (new or not)
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]  # {"index", "error"}


class Recording:
    """Records batches the way the gateway's doors do (ingest/records.py, ingest/service.py),
    from this process: store calls in a thread, live budget counters when they are shared."""

    def __init__(self, store: Store, key: Any, settings: Any) -> None:
        self.store = store
        self.key = key
        self.settings = settings
        self.prices = price_book(settings)
        self.directory = store.load_directory()
        self.rules = store.load_rules()
        self.recorder: Any = None
        self.owners: dict[Any, Any] = {}  # (project, team) -> owner, for every batch of the run
        self.horizon = store.raw_events_pruned_before()

    @contextlib.asynccontextmanager
    async def open(self) -> Any:
        from spendgate.ingest.service import Recorder
        from spendgate.ledger.spool.writer import Stored, append_isolating

        async def store_events(events: Sequence[Any]) -> Stored:
            # As the gateway's writer stores a batch: an event the database refuses is isolated
            # (and reported with its record) rather than failing the others.
            new, refused = await asyncio.to_thread(append_isolating, self.store, events)
            return Stored(new, {e.id: f"the ledger refused it ({type(exc).__name__}: {exc})" for e, exc in refused})

        async with live_budgets(self.store, self.settings) as enforcer:
            self.recorder = Recorder(store_events, enforcer, lambda: datetime.now(UTC))
            yield self

    def prepare(
        self, records: list[Any], *, source: str, endpoint: str, namespace: str | None = None
    ) -> tuple[list[Any], Any]:
        """The events of ``records`` (validated, attributed, priced), and the build outcome."""
        from spendgate.ingest.records import build_events

        outcome = build_events(
            records,
            key=self.key,
            directory=self.directory,
            prices=self.prices,
            now=datetime.now(UTC),
            source=source,
            endpoint=endpoint,
            missing_dimensions=self.rules.missing_dimensions if self.key is not None else None,
            namespace=namespace,
            owners=self.owners,
            horizon=self.horizon,
        )
        return list(outcome.events.values()), outcome

    async def commit(self, prepared: tuple[list[Any], Any]) -> BatchOutcome:
        events, outcome = prepared
        stored = await self.recorder.record(events)
        accepted = sum(1 for e in events if e.id in stored.new)
        index_of = {event.id: index for index, event in outcome.events.items()}
        refused = [{"index": index_of[event_id], "error": reason} for event_id, reason in stored.refused.items()]
        duplicates = len(events) - accepted - len(refused) + len(outcome.duplicates)
        return BatchOutcome(events, accepted, duplicates, [*outcome.rejected, *refused])

    async def batch(
        self, records: list[Any], *, source: str, endpoint: str, namespace: str | None = None
    ) -> BatchOutcome:
        if self.recorder is None:  # one batch alone: open, record, close
            async with self.open():
                return await self.batch(records, source=source, endpoint=endpoint, namespace=namespace)
        return await self.commit(self.prepare(records, source=source, endpoint=endpoint, namespace=namespace))
