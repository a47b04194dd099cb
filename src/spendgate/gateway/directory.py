"""Keeps the gateway's in-memory snapshot of teams, projects and keys — and of the
enforcement rules (budgets, limits, policies) — current.

The request path reads the snapshot only. A background task asks the store for its
config version every ``interval`` seconds (one tiny query) and reloads when it changed,
so a key created or revoked by the CLI or another replica is seen within about a second.
An unknown key may also ask for an immediate check: one version query shared by every
request waiting on it (and a reload only if the version moved), so a brand-new key works at
once while a flood of bad keys costs at most one tiny query at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from spendgate.attribution import Directory
from spendgate.budgets.rules import Rules
from spendgate.ledger.store import Store

log = logging.getLogger("spendgate.directory")


class DirectoryRefresher:
    def __init__(self, store: Store, apply: Callable[[Directory, Rules], None], *, interval: float = 1.0) -> None:
        self.store = store
        self.apply = apply
        self.interval = interval
        self._version = -1
        self._inflight: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> tuple[Directory, Rules]:
        return self.store.load_directory(), self.store.load_rules()

    def load_now(self) -> Directory:
        """Synchronous first load, at start-up."""
        directory, rules = self._load()
        self._version = directory.version
        self.apply(directory, rules)
        return directory

    async def _reload(self) -> None:
        directory, rules = await asyncio.to_thread(self._load)
        self._version = directory.version
        self.apply(directory, rules)

    async def _reload_if_changed(self) -> None:
        version = await asyncio.to_thread(self.store.config_version)
        if version != self._version:
            await self._reload()

    async def reload_soon(self) -> None:
        """Reload if the store changed; concurrent callers share one check."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        self._inflight = asyncio.ensure_future(self._reload_if_changed())
        try:
            await asyncio.shield(self._inflight)
        finally:
            self._inflight = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._reload_if_changed()
            except Exception:
                log.exception("could not refresh keys and projects; keeping the last snapshot")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spendgate-directory")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
