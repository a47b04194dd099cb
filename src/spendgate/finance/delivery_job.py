"""The scheduled finance deliveries ``serve`` runs (and ``spendgate finance deliver`` by hand).

Every replica runs the loop. Each tick asks the schedule (``schedule.py``) which periods are due
and not yet done, then claims each in the ledger (``claim_finance_delivery``): the one replica
holding a period's lease delivers it and records the outcome. A failure is retried on a later
tick after a backoff (1, 2, 4… minutes, capped at an hour) until ``max_attempts`` is spent; a
replica that dies mid-delivery holds the period only until its lease runs out.

The monthly report (and statements) go to ``[finance] deliver_to``; the weekly summary becomes
one ``finance.weekly_summary`` alert per team that has webhooks, which the alert dispatcher
sends (signed, retried) to that team's webhooks only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from spendgate.alerts.rules import new_alert_id, retry_delay
from spendgate.finance.delivery import envelope, monthly_documents, post_envelope, write_to_directory
from spendgate.finance.delivery_config import FinanceConfig
from spendgate.finance.schedule import MONTHLY, WEEKLY, Due, due_deliveries
from spendgate.finance.weekly import build_weekly
from spendgate.redact import redact_urls

log = logging.getLogger("spendgate.finance")

CHECK_INTERVAL_S = 60.0
LEASE_S = 900.0  # longer than building the documents and one send (SEND_TIMEOUT_S)
SEND_TIMEOUT_S = 120.0
BACKOFF_BASE_S = 60.0
BACKOFF_CAP_S = 3600.0
MAX_ATTEMPTS = 24


@dataclass(frozen=True)
class Outcome:
    kind: str
    period: str
    status: str  # delivered | retrying | failed | skipped (delivered already, or another replica has it)
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "period": self.period, "status": self.status, "detail": self.detail}


class FinanceDeliveryJob:
    def __init__(
        self,
        store: Any,
        config: FinanceConfig,
        clock: Callable[[], datetime],
        *,
        on_alerts: Callable[[], None] = lambda: None,
        before_check: Callable[[], Awaitable[None]] | None = None,
        interval: float = CHECK_INTERVAL_S,
        lease_seconds: float = LEASE_S,
        timeout: float = SEND_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if lease_seconds <= timeout:
            raise ValueError("lease_seconds must be longer than the send timeout")
        self.store = store
        self.config = config
        self.clock = clock
        self.on_alerts = on_alerts  # weekly summaries recorded: the dispatcher may send them now
        # serve: this replica's buffered events written first, so a report made at 00:00 on the 1st
        # holds the month's last seconds (other replicas write theirs within a flush interval).
        self.before_check = before_check
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of delivery switched on: the monthly report with a destination, the weekly
        summary when asked for."""
        wanted = {MONTHLY: self.config.monthly, WEEKLY: self.config.weekly_summary}
        return tuple(kind for kind, on in wanted.items() if on)

    async def run_once(self) -> list[Outcome]:
        """Every delivery due now that this replica claims; what became of each."""
        kinds = self.kinds
        if not kinds:
            return []
        rows = await asyncio.to_thread(self.store.finance_deliveries)
        completed = [Due(r["kind"], r["period"]) for r in rows if r["status"] != "pending"]
        due = due_deliveries(self.clock(), kinds, completed)
        if due and self.before_check is not None:
            await self.before_check()
        return [await self.deliver(d.kind, d.period) for d in due]

    async def deliver(self, kind: str, period: str, *, force: bool = False) -> Outcome:
        """Deliver ``period`` of ``kind`` if this caller can claim it (``force``: even if it was
        delivered or given up before)."""
        now = self.clock()
        attempt = await asyncio.to_thread(
            self.store.claim_finance_delivery, kind, period, now, self.lease_seconds, force=force
        )
        if attempt is None:
            return Outcome(kind, period, "skipped", "delivered already, not due yet, or another replica has it")
        try:
            detail = await (self._monthly(period, now) if kind == MONTHLY else self._weekly(period, now, force))
        except Exception as exc:  # whatever failed, the period is retried (or given up) below
            return await self._failed(kind, period, attempt, exc)
        await asyncio.to_thread(self.store.finance_delivery_succeeded, kind, period, self.clock())
        log.info("finance: delivered %s %s (%s)", kind, period, detail)
        return Outcome(kind, period, "delivered", detail)

    async def _failed(self, kind: str, period: str, attempt: int, exc: Exception) -> Outcome:
        # URLs in errors may carry credentials: never logged or stored whole.
        error = redact_urls(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:500]
        next_at = None
        if attempt < self.max_attempts:
            next_at = self.clock() + timedelta(seconds=retry_delay(attempt, BACKOFF_BASE_S, BACKOFF_CAP_S))
        await asyncio.to_thread(self.store.finance_delivery_failed, kind, period, error, next_at)
        when = "giving up" if next_at is None else f"retrying at {next_at.isoformat()}"
        log.warning("finance: %s %s failed (attempt %d): %s; %s", kind, period, attempt, error, when)
        return Outcome(kind, period, "failed" if next_at is None else "retrying", error)

    async def _monthly(self, month: str, now: datetime) -> str:
        documents = await asyncio.to_thread(monthly_documents, self.store, month, self.config)
        if self.config.to_webhook:
            payload = envelope(MONTHLY, month, documents, at=now)
            await post_envelope(
                self._client(), self.config.deliver_to, self.config.secret, payload, timeout=self.timeout
            )
            return f"{len(documents)} documents posted"
        await asyncio.to_thread(write_to_directory, Path(self.config.deliver_to), month, documents)
        return f"{len(documents)} documents written"

    async def _weekly(self, week: str, now: datetime, force: bool) -> str:
        hooks = await asyncio.to_thread(self.store.list_webhooks)
        teams = {h["team"] for h in hooks if h["team"]}
        summaries = await asyncio.to_thread(build_weekly, self.store, week, teams)
        # An alert is unique per (kind, team, window key): a forced re-send needs a key of its own.
        key = f"{week}+resent-{int(now.timestamp())}" if force else week
        recorded = 0
        for summary in summaries:
            payload = summary.payload(at=now, alert_id=new_alert_id(now))
            recorded += await asyncio.to_thread(
                self.store.record_alert,
                WEEKLY,
                summary.team,
                key,
                0,
                payload,
                now=now,
                team=summary.team,
                team_only=True,
            )
        if recorded:
            self.on_alerts()
        return f"{recorded} team summaries queued"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("finance: the scheduled delivery check failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever(), name="spendgate-finance-delivery")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
