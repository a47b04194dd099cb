"""Budget counters re-synced against the ledger, so that drift heals instead of lasting.

A counter is loaded from the ledger at its window's first use and then only moved by
settlements. Anything else leaves it wrong for the rest of the window: a database restored from
a backup, a settlement lost with a crashed process or a Redis that failed over, events the
ledger got without a settlement (recovered from a spool, dead letters retried). So on a schedule
(``counter_resync_interval``) one replica — whichever takes the lock — sets the spent of every
active budget window's counter from the ledger. Reservations are left as they are.

The race. At any instant some spend is settled in the counters but not yet in the ledger (its
event waits in a writer's queue or spool, on any replica), and some is in the ledger but not yet
settled (the writer shipped the event before the request's settlement ran). Setting spent to the
ledger's figure would drop the first and count the second twice. So the counters keep track of
both, per counter (see redis_scripts.py): ``u``, settled spend whose event no writer has
confirmed shipped yet, and ``p``, shipped spend whose reservation has not settled yet. Then the
ledger's part of spent is ``s - u + p``, and a re-sync sets ``s = ledger + u - p``, with ``u``
and ``p`` read in the same atomic step that writes ``s`` (settlements in between are counted).

That is exact only if the ledger figure and ``u``/``p`` agree on which events are shipped: a batch
committed to the ledger but not yet confirmed would be in both the ledger figure and ``u``. So
the writers and the re-sync take turns (``ShipFence``): a writer takes a lease before writing a
batch and ends it once the batch is confirmed; the re-sync takes a lock (no new batch starts),
waits until no lease is live, reads the ledger, and applies under the lock. Writers wait at most
the lock's TTL; a writer that died mid-batch holds the re-sync up only until its lease expires.

Limits, on purpose: a batch written and never confirmed (its process died in the few ms between
the commit and the confirmation, and its spool was lost) stays counted twice until the window
ends (an over-count: the safe direction); a re-sync that took longer than its lock is dropped
and tried again next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal

from spendgate.budgets.counters import CounterStore
from spendgate.budgets.enforcer import counter_key
from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.windows import Window, window_for

log = logging.getLogger("spendgate.budgets")

LOCK_TTL_S = 30.0  # the longest a re-sync may take from its lock to its apply
SHIP_LEASE_S = 60.0  # the longest one ledger batch is expected to take to write
IDLE_WAIT_S = 5.0  # how long a re-sync waits for batches being written to end
POLL_S = 0.01
MAX_UNCONFIRMED = 100_000  # confirmations kept for a retry while the counters are unreachable


class ShipFence:
    """The ledger writer's side: ``begin`` before writing a batch, ``end`` once it is stored
    (or set aside). ``counters`` is asked each time: the app swaps in Redis at start-up."""

    def __init__(self, counters: Callable[[], CounterStore], *, lease: float = SHIP_LEASE_S) -> None:
        self._counters = counters
        self.lease = lease
        self.token = uuid.uuid4().hex  # one writer ships one batch at a time
        self._unconfirmed: list[tuple[str, Decimal | None]] = []

    async def begin(self) -> None:
        """Wait while a re-sync holds its lock (at most its TTL), then take the lease. If the
        counters cannot be reached the batch is written anyway: the ledger comes first."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + LOCK_TTL_S + 1
        try:
            while (wait := await self._counters().ship_begin(self.token, self.lease)) > 0:
                if loop.time() >= give_up:
                    return
                await asyncio.sleep(min(wait, 0.05))
        except Exception:
            log.warning("could not tell the budget counters a ledger batch is being written", exc_info=True)

    async def end(self, shipped: Sequence[tuple[str, Decimal | None]]) -> bool:
        """Confirm ``(event id, cost)`` shipped and end the lease; False if it failed: the
        confirmation is then kept and sent with the next batch's (until it succeeds), and the
        writer keeps the spool checkpoint where it was, so a restart replays and confirms them."""
        pending = [*self._unconfirmed, *shipped]
        try:
            await self._counters().ship_end(self.token, pending)
        except Exception:
            log.warning("could not confirm %d shipped event(s) to the budget counters", len(pending), exc_info=True)
            if len(pending) > MAX_UNCONFIRMED:
                # Each one dropped stays counted twice after the next re-sync (an over-count).
                log.error("dropping %d unconfirmed shipped events", len(pending) - MAX_UNCONFIRMED)
                pending = pending[-MAX_UNCONFIRMED:]
            self._unconfirmed = pending
            return False
        self._unconfirmed = []
        return True


class CounterResync:
    """Sets the spent of every active budget window's counter from the ledger, every
    ``interval`` seconds (``run_once`` does one round now)."""

    def __init__(
        self,
        counters: Callable[[], CounterStore],
        budgets: Callable[[], Sequence[Budget]],
        ledger_spend: Callable[[Scope, Window], Awaitable[Decimal]],
        *,
        interval: float,
        clock: Callable[[], datetime],
        lock_ttl: float = LOCK_TTL_S,
        idle_wait: float = IDLE_WAIT_S,
    ) -> None:
        self._counters = counters
        self._budgets = budgets
        # Straight from the ledger: never flushing a writer first, which would wait for our lock.
        self._ledger_spend = ledger_spend
        self.interval = interval
        self._clock = clock
        self.lock_ttl = lock_ttl
        self.idle_wait = idle_wait
        self.rounds = 0  # rounds applied by this process
        self.corrected = 0  # counters whose spent it changed
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> dict[str, tuple[Decimal, Decimal]] | None:
        """One re-sync: ``{counter: (spent before, after)}`` for the counters loaded, or None when
        it did not run (another replica's re-sync holds the lock, batches kept being written, or
        it took longer than its lock)."""
        now = self._clock()
        active: dict[str, tuple[Budget, Window]] = {}
        for budget in self._budgets():
            window = window_for(budget.period, budget.timezone, now)
            active[counter_key(budget, window)] = (budget, window)
        if not active:
            return {}
        counters = self._counters()
        token = uuid.uuid4().hex
        if not await counters.resync_lock(token, self.lock_ttl):
            return None
        applied = None
        try:
            if await self._wait_for_writers(counters):
                spends = {key: await self._ledger_spend(b.scope, w) for key, (b, w) in active.items()}
                applied = await counters.resync_apply(token, spends)
                if applied is None:
                    log.warning("a budget counter re-sync took longer than %s s; dropped", self.lock_ttl)
        finally:
            if applied is None:
                with contextlib.suppress(Exception):
                    await counters.resync_unlock(token)
        if applied is not None:
            self.rounds += 1
            for counter, (before, after) in applied.items():
                if before != after:
                    self.corrected += 1
                    log.warning("budget counter %s re-synced from the ledger: spent %s -> %s", counter, before, after)
        return applied

    async def _wait_for_writers(self, counters: CounterStore) -> bool:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.idle_wait
        while await counters.ships_in_progress():
            if loop.time() >= give_up:
                log.info("ledger batches kept being written; budget counter re-sync left to the next round")
                return False
            await asyncio.sleep(POLL_S)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except Exception:
                log.exception("budget counter re-sync failed")

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spendgate-counter-resync")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
