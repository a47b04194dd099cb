"""Batches usage events off the request path into the store.

``record`` is a list append: the request path never waits on the database. A background
task hands batches to ONE writer thread (SQLite has one writer anyway, and a thread keeps
blocking I/O off the event loop). A failed batch is kept and retried with backoff, never
dropped; ``aclose`` drains everything on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from spendgate.ledger.events import UsageEvent
from spendgate.ledger.store import Store

log = logging.getLogger("spendgate.ledger")

MAX_BATCH = 2000
MAX_BACKOFF_S = 5.0


class EventWriter:
    def __init__(self, store: Store, *, flush_interval: float = 0.2) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self._pending: list[UsageEvent] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spendgate-ledger")
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self.written = 0

    def record(self, event: UsageEvent) -> None:
        self._pending.append(event)
        if len(self._pending) >= MAX_BATCH and self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spendgate-ledger-writer")

    async def flush(self) -> None:
        """Write everything recorded so far (retrying until the store takes it)."""
        backoff = 0.05
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                written = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.store.append_events, batch
                )
            except Exception:
                # Put the batch back in front: order and completeness over speed.
                self._pending[:0] = batch
                log.exception("ledger write failed; %d events kept, retrying in %.2fs", len(self._pending), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            self.written += written
            backoff = 0.05

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            self._wake.clear()
            await self.flush()

    async def aclose(self) -> None:
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        self._executor.shutdown(wait=True)
