"""The daily drift check ``serve`` runs: yesterday reconciled with each provider whose admin key
is set, and a ``reconcile.drift`` alert (delivered, signed, to every webhook like the budget
alerts) when the drift passes ``[reconcile] drift_threshold_percent``.

Every replica runs the loop; the day's check of a provider is claimed in the ledger
(``claim_job_run``) so exactly one replica calls the provider's admin API and alerts. A check
whose provider answer fails is not retried that day (the claim is taken): the error is logged,
and ``spendgate reconcile`` covers any range on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.alerts.rules import new_alert_id
from spendgate.budgets.windows import iso_utc
from spendgate.money import format_usd
from spendgate.providers.admin import KEY_VARIABLES
from spendgate.reconcile.compare import Reconciliation

__all__ = ("DRIFT", "DriftJob", "drift_passes", "drift_payload")

log = logging.getLogger("spendgate.reconcile")

DRIFT = "reconcile.drift"
CHECK_INTERVAL_S = 3600.0  # the loop wakes hourly; each day is checked once


def drift_passes(result: Reconciliation, threshold: Decimal) -> bool:
    """Whether the range's drift, either way, is beyond ``threshold`` percent."""
    drift = result.drift_percent
    return drift is not None and abs(drift) > threshold


def drift_payload(result: Reconciliation, threshold: Decimal, *, at: datetime, alert_id: str) -> dict[str, Any]:
    return {
        "event": DRIFT,
        "id": alert_id,
        "at": iso_utc(at),
        "provider": result.provider,
        "since": result.since.isoformat(),
        "until": result.until.isoformat(),
        "drift_percent": format_usd(result.drift_percent or Decimal(0)),
        "threshold_percent": format_usd(threshold),
        "total_ledger_usd": format_usd(result.total_ledger_usd),
        "total_provider_usd": format_usd(result.total_provider_usd),
        "unseen_usd": format_usd(result.unseen_usd),
        "verdicts": result.verdict_counts(),
    }


class DriftJob:
    def __init__(
        self,
        store: Any,
        settings: Any,
        clock: Callable[[], datetime],
        environ: Mapping[str, str],
        interval: float = CHECK_INTERVAL_S,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.environ = environ
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    @property
    def threshold(self) -> Decimal | None:
        return self.settings.reconcile.drift_threshold_percent

    def providers(self) -> list[str]:
        return [p for p, variable in KEY_VARIABLES.items() if (self.environ.get(variable) or "").strip()]

    async def run_once(self) -> list[dict[str, Any]]:
        """Yesterday's check of each provider not yet checked by any replica; the alerts recorded."""
        from spendgate.reconcile.service import fetch_report, reconcile_with_ledger

        threshold = self.threshold
        if threshold is None:
            return []
        now = self.clock()
        day = now.date() - timedelta(days=1)
        recorded = []
        for provider in self.providers():
            if not await asyncio.to_thread(self.store.claim_job_run, DRIFT, f"{provider}:{day.isoformat()}", now):
                continue  # another replica (or an earlier round) has it
            try:
                report = await fetch_report(self.settings, provider, day, day, self.environ)
                result = await asyncio.to_thread(reconcile_with_ledger, self.store, self.settings, report)
            except Exception as exc:  # the provider or the database: logged, the next day goes on
                log.error("reconcile: the daily drift check of %s for %s failed: %s", provider, day, exc)
                continue
            if not drift_passes(result, threshold):
                continue
            payload = drift_payload(result, threshold, at=now, alert_id=new_alert_id(now))
            if await asyncio.to_thread(self.store.record_alert, DRIFT, provider, day.isoformat(), 0, payload, now=now):
                recorded.append(payload)
        return recorded

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("reconcile: the daily drift check failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever(), name="spendgate-reconcile-drift")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
