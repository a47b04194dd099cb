"""Retention of raw usage events: the cut-off (pure) and the gateway's periodic prune.

Rollups are kept forever; raw events older than ``retention_days`` are deleted. The floor of
35 days is not arbitrary: a monthly budget window reaches back at most 31 days plus its time
zone's offset, and the pieces of a window that rollups cannot answer (a tag-scoped budget,
the partial hours at the edges of a window in a half-hour time zone) are summed from raw
events. With less, a budget could no longer be re-read from the ledger after Redis is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from spendgate.ledger.store import Store

log = logging.getLogger("spendgate.retention")

MIN_RETENTION_DAYS = 35
PRUNE_INTERVAL_S = 3600.0  # the cut-off moves once a day; hourly catches it within an hour


def retention_cutoff(today: date, days: int) -> datetime:
    """Raw events before this instant go: midnight UTC, ``days`` days before ``today``."""
    return datetime.combine(today - timedelta(days=days), time(), UTC)


class RetentionJob:
    """Prunes raw events in the background of a gateway that has ``retention_days`` set.

    Every replica runs it; pruning is idempotent (the horizon only moves forward and the
    deletes go in small transactions), so a second replica finds little or nothing to do.
    """

    def __init__(
        self,
        store: Store,
        days: int,
        clock: Callable[[], datetime],
        interval: float = PRUNE_INTERVAL_S,
    ) -> None:
        self.store = store
        self.days = days
        self.clock = clock
        self.interval = interval
        self.pruned = 0
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        cutoff = retention_cutoff(self.clock().astimezone(UTC).date(), self.days)
        deleted = await asyncio.to_thread(self.store.prune, cutoff)
        self.pruned += deleted
        if deleted:
            log.info("retention: deleted %d raw events before %s (rollups kept)", deleted, cutoff.date())
        return deleted

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # The database may be down; the next round tries again, nothing is lost.
                log.exception("retention: could not prune raw events")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever(), name="spendgate-retention")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
