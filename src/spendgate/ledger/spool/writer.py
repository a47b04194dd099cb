"""Batches usage events off the request path into the store, through a local spool.

``record`` appends the event to the spool (one ``os.write``: it survives the process being
killed) and keeps a copy in memory; ``begin`` spools a request about to go upstream, so a
request in flight when the process dies is recovered as ``incomplete``. A background task
hands batches to ONE writer thread (SQLite has one writer anyway, and a thread keeps blocking
I/O off the event loop); after each batch commits, the spool's checkpoint moves past it.

When the store is unreachable the gateway keeps serving: events pile up in the spool, and past
``max_memory_events`` unshipped events the writer stops holding copies in memory and, once
the store is back, reads them from the spool instead. A failed batch is retried with backoff,
never dropped; replays are harmless because the store ignores an id it already has.

A batch the store refuses for what an event holds (a value its columns cannot take: a data
error, see ``is_data_error``) is not retried as a whole, which would stall every event behind
it for ever and replay it at every start: the batch is halved until the failing events are
found (``append_isolating``), the rest is stored, and those are set aside durably as dead
letters (spool.py) before the checkpoint moves past them. Reported by ``/healthz``, listed and
retried by ``spendgate dead-letters``.

Without a spool (``spool_dir=None``: an in-memory database, or a writer built by hand) it is
the plain in-memory batcher, and ``aclose`` retries until the store takes everything.

``shipping`` (a ``budgets.resync.ShipFence``, set by the app) is told before and after each
batch, so the budget counters know which settled spend the ledger has (the counter re-sync
depends on it); the spool checkpoint moves past a batch only once that is confirmed, so a crash
in between replays (and confirms) it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spendgate.ledger.events import UsageEvent
from spendgate.ledger.spool.recovery import adopt_orphans, event_or_set_aside, scan_slot
from spendgate.ledger.spool.spool import (
    SEGMENT_BYTES,
    DeadLetter,
    DeadLetters,
    Position,
    Record,
    Spool,
    dead_letter,
    decode_event,
    event_fields,
)
from spendgate.ledger.store import Store, StoreError

log = logging.getLogger("spendgate.ledger")

MAX_BATCH = 2000
_NEW = "new"  # a waiting door's event was stored by this write
MAX_BACKOFF_S = 5.0
MAX_MEMORY_EVENTS = 10_000
# A clean stop while the store is down does not wait for it forever: what is left stays in
# the spool and is shipped by the next start.
SHUTDOWN_PATIENCE_S = 10.0


@dataclass(frozen=True)
class Stored:
    """What became of events a door asked to be stored now (``EventWriter.store_now``): the ids
    new to the ledger, and those it refused (set aside as dead letters) with the reason; the
    others were in the ledger already."""

    new: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)


class EventWriter:
    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 0.2,
        spool_dir: str | Path | None = None,
        spool_fsync: str = "interval",
        max_memory_events: int = MAX_MEMORY_EVENTS,
        unfinished_event: Callable[[dict[str, Any]], UsageEvent] | None = None,
        segment_bytes: int = SEGMENT_BYTES,
        shutdown_patience: float = SHUTDOWN_PATIENCE_S,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self.spool_fsync = spool_fsync
        self.max_memory_events = max(1, max_memory_events)
        self.unfinished_event = unfinished_event
        self.segment_bytes = segment_bytes
        self.shutdown_patience = shutdown_patience
        self.spool: Spool | None = None
        # Unshipped events in spool order, each with its spool position: a prefix of what the
        # spool holds past the checkpoint. ``_spilled``: the spool holds more than this prefix.
        self._pending: list[tuple[UsageEvent, Position | None]] = []
        self._spilled = False
        self._cursor: Position = (0, 0)  # where shipped events end in the spool
        self._unspooled: list[UsageEvent] = []  # the spool failed to take them (disk full…)
        self._backlog = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spendgate-ledger")
        self._sync_executor: ThreadPoolExecutor | None = None
        self._ship_lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._give_up_at: float | None = None
        self.written = 0
        self.recovered = 0
        self.spool_errors = 0
        # Set aside: in the dead-letter file beside the spool, or (no spool) in memory.
        self.dead_letters: DeadLetters | None = None
        self._dead_in_memory: list[DeadLetter] = []
        # Callers of ``store_now`` waiting to learn whether their events were new to the ledger.
        self._waiting: dict[str, asyncio.Future[str | None]] = {}
        self.shipping: Any = None  # a budgets.resync.ShipFence (the ledger package does not import budgets)

    # --- the request path ----------------------------------------------------------------
    def begin(self, request_id: str, begin: dict[str, Any]) -> None:
        """A request is about to go upstream (``begin`` carries no prompt, only estimates)."""
        if self.spool is None:
            return
        try:
            self.spool.append_begin(request_id, begin)
        except (OSError, TypeError, ValueError):
            self._spool_failed("begin of request " + request_id)

    def record(self, event: UsageEvent) -> None:
        position = None
        if self.spool is not None:
            try:
                position = self.spool.append_event(event)
            except (OSError, TypeError, ValueError):
                self._spool_failed("event " + event.id)
        self._backlog += 1
        if position is None and self.spool is not None:
            self._unspooled.append(event)
        elif self._spilled or len(self._pending) >= self.max_memory_events:
            self._spilled = True  # on disk only; read back from the spool when shipped
        else:
            self._pending.append((event, position))
        if self._wake is not None and self._backlog >= MAX_BATCH:
            self._wake.set()

    async def store_now(self, events: Sequence[UsageEvent]) -> Stored:
        """Record ``events`` as ``record`` does (spooled, batched with everything else) and ship
        them now; answers which were new to the ledger and which it refused. For the doors that
        must say what became of each record (ingestion): a replayed id is stored once, and its
        caller is told so. Ids must be distinct. Raises what shipping raised."""
        loop = asyncio.get_running_loop()
        waiting = {event.id: loop.create_future() for event in events}
        self._waiting.update(waiting)
        try:
            for event in events:
                self.record(event)
            await self._ship_all()
            stored = Stored()
            for event_id, future in waiting.items():
                outcome = await future
                if outcome == _NEW:
                    stored.new.add(event_id)
                elif outcome is not None:
                    stored.refused[event_id] = outcome
            return stored
        finally:
            for event_id in waiting:
                self._waiting.pop(event_id, None)

    def _resolve(self, events: Sequence[UsageEvent], new: set[str], refused: dict[str, str]) -> None:
        """Tell the callers of ``store_now`` waiting on these events what became of them: new
        (``_NEW``), already stored (None), or refused (its reason)."""
        if not self._waiting:
            return
        for event in events:
            future = self._waiting.get(event.id)
            if future is not None and not future.done():
                future.set_result(_NEW if event.id in new else refused.get(event.id))
        for event_id, reason in refused.items():
            future = self._waiting.get(event_id)
            if future is not None and not future.done():
                future.set_result(reason)

    def _spool_failed(self, what: str) -> None:
        self.spool_errors += 1
        if self.spool_errors == 1 or self.spool_errors % 1000 == 0:
            log.exception(
                "could not write the %s to the spool in %s (%d failures); kept in memory only",
                what,
                self.spool.dir if self.spool else "?",
                self.spool_errors,
            )

    @property
    def pending(self) -> int:
        """Events recorded and not yet in the ledger (in memory or on disk)."""
        return self._backlog

    @property
    def dead_letter_count(self) -> int:
        """Records set aside because the ledger would not take them (see ``set_aside``)."""
        if self.dead_letters is not None:
            try:
                return self.dead_letters.count()
            except OSError:
                log.exception("could not read the dead letters in %s", self.dead_letters.path)
                return -1
        return len(self._dead_in_memory)

    @property
    def in_memory(self) -> int:
        """Unshipped events of which memory holds a copy (bounded by ``max_memory_events`` while
        the spool works)."""
        return len(self._pending) + len(self._unspooled)

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Take a spool slot, recover what dead processes left, and start shipping."""
        if self.spool_dir is not None and self.spool is None:
            self.open_spool()
        loop = asyncio.get_running_loop()
        self._ship_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="spendgate-ledger-writer")
        if self._backlog:
            self._wake.set()  # what recovery found ships now, not one flush interval later
        if self.spool is not None and self.spool.fsync == "interval":
            self._sync_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spendgate-spool-sync")
            self._sync_task = loop.create_task(self._sync_loop(), name="spendgate-spool-sync")

    def open_spool(self) -> None:
        assert self.spool_dir is not None
        spool = self.spool = Spool.open(self.spool_dir, fsync=self.spool_fsync, segment_bytes=self.segment_bytes)
        self.dead_letters = DeadLetters.beside(spool.root)
        self._cursor = spool.checkpoint()
        own = scan_slot(spool.dir, self._restore)
        price_unfinished = self.unfinished_event or _no_pricing
        for begin in own.unfinished.values():
            event = event_or_set_aside("begin", begin, price_unfinished, self._set_aside_record)
            if event is not None:
                self.record(event)
        adopted = adopt_orphans(
            spool.root, spool.dir, self.record, price_unfinished, spool.sync, set_aside=self._set_aside_record
        )
        for leftovers in [own, *adopted]:
            if leftovers.events or leftovers.unfinished:
                log.warning(
                    "spool %s: recovered %d unshipped event(s) and %d request(s) in flight (now incomplete, estimated)",
                    leftovers.slot,
                    leftovers.events,
                    len(leftovers.unfinished),
                )
            self.recovered += leftovers.events + len(leftovers.unfinished)
        if self.recovered:
            spool.sync()  # the incomplete events just written are on disk before serving
        log.info("spool slot %s (fsync %s)", spool.dir, spool.fsync)

    def _restore(self, found: Record) -> None:
        """An unshipped event found in our own slot: it stays there, memory gets a copy (the
        first ``max_memory_events`` only; the rest is read back when shipped)."""
        if self._spilled or len(self._pending) >= self.max_memory_events:
            self._backlog += 1
            self._spilled = True  # decoded when read back (a record that is no event: set aside then)
            return
        event = event_or_set_aside("event", found.fields, decode_event, self._set_aside_record)
        if event is not None:
            self._backlog += 1
            self._pending.append((event, found.position))

    async def flush(self) -> None:
        """Write everything recorded so far (retrying until the store takes it)."""
        await self._ship_all()

    async def aclose(self) -> None:
        self._closing = True
        if self.spool is not None:
            self._give_up_at = time.monotonic() + self.shutdown_patience
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        stored = await self._ship_all()
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        self._executor.shutdown(wait=True)
        if self._sync_executor is not None:
            self._sync_executor.shutdown(wait=True)
        spool = self.spool
        if spool is not None:
            shipped_all = stored and not self._backlog and not self._unspooled and not spool.open_begins
            if not shipped_all:
                log.warning(
                    "%d event(s) not yet in the ledger and %d request(s) still in flight stay in the spool %s;"
                    " the next start ships them",
                    self._backlog,
                    spool.open_begins,
                    spool.dir,
                )
            spool.close(shipped_all=shipped_all)

    # --- shipping ------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            self._wake.clear()
            # What arrived during this round waits for the next tick (or a full batch): shipping
            # until empty under steady traffic means a transaction, a checkpoint and a thread
            # hand-off for every few events.
            await self._ship_all(drain=False)

    async def _sync_loop(self) -> None:
        # Its own thread: an fsync never waits behind a database call that hangs.
        assert self.spool is not None and self._sync_executor is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.flush_interval)
            if self.spool.dirty:
                try:
                    await loop.run_in_executor(self._sync_executor, self.spool.sync)
                except OSError:
                    log.exception("spool fsync failed")

    async def _ship_all(self, *, drain: bool = True) -> bool:
        """Ship until nothing is left (``drain``) or until less than a full batch is left (a
        periodic round); False if it gave up (closing while the store is down)."""
        if self._ship_lock is None:  # never started: ship inline
            self._ship_lock = asyncio.Lock()
        async with self._ship_lock:
            backoff = 0.05
            while True:
                try:
                    more = await self._ship_one_batch()
                except Exception:
                    log.exception("ledger write failed; %d events kept, retrying in %.2fs", self._backlog, backoff)
                    if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                        return False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                backoff = 0.05
                if not more or not (drain or self._closing or self._backlog >= MAX_BATCH or self._spilled):
                    return True

    async def _ship_one_batch(self) -> bool:
        """Ship one batch; False when there was nothing to ship."""
        loop = asyncio.get_running_loop()
        if self._unspooled:
            batch = self._unspooled[:MAX_BATCH]
            self.written += self._stored(batch, await self._write(batch, None))
            del self._unspooled[: len(batch)]
            self._backlog -= len(batch)
            return True
        if self._pending:
            taken = self._pending[:MAX_BATCH]
            events = [event for event, _ in taken]
            positions = [position for _, position in taken if position is not None]
            shipped = positions[-1] if positions else None
            self.written += self._stored(events, await self._write(events, shipped))
            del self._pending[: len(taken)]
            self._backlog -= len(taken)
            if shipped is not None:
                self._cursor = shipped
            return True
        if self._spilled and self.spool is not None:
            end = self.spool.end
            undecodable: list[DeadLetter] = []
            read, cursor = await loop.run_in_executor(
                self._executor,
                self.spool.read_events,
                self._cursor,
                end,
                MAX_BATCH,
                lambda record, exc: undecodable.append(dead_letter("event", record.fields, exc)),
            )
            if read or undecodable:
                events = [event for event, _ in read]
                self.written += self._stored(events, await self._write(events, cursor, undecodable))
                self._backlog -= len(events) + len(undecodable)
            self._cursor = cursor
            if cursor >= self.spool.end:
                # Caught up with the spool, and nothing was recorded meanwhile (``record``
                # runs on this thread): memory holds every unshipped event again.
                self._spilled = False
                self._backlog = len(self._pending) + len(self._unspooled)
            return True
        return False

    def _stored(self, events: list[UsageEvent], outcome: tuple[set[str], dict[str, str]]) -> int:
        new, refused = outcome
        self._resolve(events, new, refused)
        return len(new)

    async def _write(
        self, events: list[UsageEvent], shipped: Position | None, undecodable: Sequence[DeadLetter] = ()
    ) -> tuple[set[str], dict[str, str]]:
        """Store a batch (in the writer thread) and move the spool checkpoint past ``shipped``;
        with ``shipping``, between its ``begin`` and ``end``, the checkpoint after ``end``."""
        loop = asyncio.get_running_loop()
        fence = self.shipping
        if fence is None:
            return await loop.run_in_executor(self._executor, self._store_batch, events, shipped, undecodable)
        await fence.begin()
        # A failure keeps the lease: the batch is retried, and until it is confirmed no re-sync
        # reads a ledger that may hold part of it.
        outcome = await loop.run_in_executor(self._executor, self._store_batch, events, None, undecodable)
        # Stored or set aside alike, the writer is done with them.
        confirmed = await fence.end([(event.id, event.cost_usd) for event in events])
        if confirmed and shipped is not None and self.spool is not None:
            await loop.run_in_executor(self._executor, self._commit_checkpoint, shipped)
        return outcome

    def _commit_checkpoint(self, shipped: Position) -> None:
        assert self.spool is not None
        try:
            self.spool.commit(shipped)
        except OSError:
            # The events are stored; a stale checkpoint only means shipping them again.
            log.exception("could not move the spool checkpoint")

    def _store_batch(
        self, events: list[UsageEvent], shipped: Position | None, undecodable: Sequence[DeadLetter] = ()
    ) -> tuple[set[str], dict[str, str]]:
        """Store a batch: the ids it stored, and those it set aside with why."""
        written, refused = append_isolating(self.store, events)
        # Durably aside before the checkpoint passes them: neither lost nor replayed.
        self.set_aside([*undecodable, *(dead_letter("event", event_fields(e), exc) for e, exc in refused)])
        if shipped is not None and self.spool is not None:
            self._commit_checkpoint(shipped)
        return written, {
            event.id: f"the ledger refused it ({type(exc).__name__}: {str(exc)[:200]})" for event, exc in refused
        }

    # --- dead letters --------------------------------------------------------------------
    def set_aside(self, letters: list[DeadLetter]) -> None:
        """Keep records the ledger will not take where ``spendgate dead-letters`` finds them (in
        memory without a spool: an in-memory database dies with the process anyway), and say so."""
        if not letters:
            return
        if self.dead_letters is not None:
            self.dead_letters.add(letters)
            where = str(self.dead_letters.path)
        else:
            self._dead_in_memory.extend(letters)
            where = "memory (no spool)"
        for letter in letters:
            log.error("%s %s set aside in %s: %s", letter.kind, letter.id, where, letter.error)

    def _set_aside_record(self, kind: str, fields: dict[str, Any], error: Exception) -> None:
        self.set_aside([dead_letter(kind, fields, error)])


def is_data_error(store: Store, exc: BaseException) -> bool:
    """True when a write failed for what the events hold (a value the database cannot store: an
    integer past 64 bits, a CHECK), not because the database is unreachable, locked or full.
    Only these are worth isolating; anything else is retried with backoff, never set aside."""
    if isinstance(exc, StoreError):
        return False  # the store's own refusal (cannot connect, schema not migrated): not the events' fault
    if isinstance(exc, (ArithmeticError, ValueError, TypeError)):
        return True  # raised while encoding an event, before the database saw it
    return store.is_data_error(exc)


def append_isolating(store: Store, events: Sequence[UsageEvent]) -> tuple[set[str], list[tuple[UsageEvent, Exception]]]:
    """Store ``events``, and if the store refuses them for what one of them holds, halve the batch
    until the failing events are alone: the others are stored, those are returned with their
    errors (a handful of extra transactions per bad event). Any other error propagates. Answers
    the ids stored (new to the ledger) and the refused events."""
    try:
        return store.append_new(events), []
    except Exception as exc:
        if not is_data_error(store, exc) or not events:
            raise
        if len(events) == 1:
            return set(), [(events[0], exc)]
        half = len(events) // 2
        written_first, refused_first = append_isolating(store, events[:half])
        written_second, refused_second = append_isolating(store, events[half:])
        return written_first | written_second, refused_first + refused_second


def _no_pricing(begin: dict[str, Any]) -> UsageEvent:
    raise RuntimeError("the spool holds requests in flight but the writer cannot price them")
