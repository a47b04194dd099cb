"""Reconcile and import, with I/O: the provider's admin reports over HTTP, the ledger's report,
and imports stored through the ingest pipeline (the CLI and ``serve``'s daily drift check)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from spendgate.pricing import PriceBook
from spendgate.providers.admin import ProviderReport, admin_client, fetch_provider_report
from spendgate.providers.admin.http import Sleep
from spendgate.reconcile.compare import Reconciliation, reconcile
from spendgate.reconcile.imports import ImportRow, rows_to_import
from spendgate.reconcile.ledger_side import ledger_rows_from_report
from spendgate.reconcile.mapping import KEY_TAG, ReconcileConfig, environments, import_record
from spendgate.reports.spec import ReportQuery

__all__ = ("ImportOutcome", "fetch_report", "import_provider", "reconcile_with_ledger")

KEY_DIMENSION = f"tag:{KEY_TAG}"


def base_url(settings: Any, provider: str) -> str:
    return settings.openai_base_url if provider == "openai" else settings.anthropic_base_url


async def fetch_report(
    settings: Any, provider: str, since: date, until: date, environ: Mapping[str, str], sleep: Sleep = asyncio.sleep
) -> ProviderReport:
    client = admin_client(provider, base_url=base_url(settings, provider), environ=environ, sleep=sleep)
    return await fetch_provider_report(client, since, until)


def reconcile_with_ledger(store: Any, settings: Any, report: ProviderReport) -> Reconciliation:
    """``report`` beside what the ledger holds for its provider and days (imported events sit
    beside the provider key they were reported under). The provider's usage is priced at list."""
    config: ReconcileConfig = settings.reconcile or ReconcileConfig()
    query = ReportQuery(by=("day", "provider", "model", KEY_DIMENSION), since=report.since, until=report.until)
    ledger = ledger_rows_from_report(store.report(query), report.provider, key_dimension=KEY_DIMENSION)
    return reconcile(report, ledger, PriceBook(), gateway_key_ids=config.gateway_keys(report.provider))


@dataclass
class ImportOutcome:
    reconciliation: Reconciliation
    rows: list[ImportRow]
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]  # {"row": ImportRow as JSON, "error": reason}


async def import_provider(store: Any, settings: Any, report: ProviderReport) -> ImportOutcome:
    """What the provider reported and the ledger lacks, stored as ``provider_import`` events by
    the ingest pipeline's own path (``ingest/offline.py`` ``Recording``: attribution, validation, the
    store call the gateway's writer makes, live budget counters)."""
    from spendgate.ingest.offline import Recording

    config: ReconcileConfig = settings.reconcile or ReconcileConfig()
    reconciliation = await asyncio.to_thread(reconcile_with_ledger, store, settings, report)
    rows = rows_to_import(reconciliation)
    now = datetime.now(UTC)
    provider = report.provider
    records = [import_record(provider, row, config.mapping_for(provider, row), now) for row in rows]
    recording = Recording(store, None, settings)
    env_of = environments(provider, rows, config)
    async with recording.open():
        events, outcome = recording.prepare(records, source="provider_import", endpoint=f"{provider} usage report")
        # The environment is a key's in the proxy; an import takes it from its mapping.
        events = [
            replace(event, environment=env_of[event.external_id]) if event.external_id in env_of else event
            for event in events
        ]
        result = await recording.commit((events, outcome))
    rejected = [{"row": rows[item["index"]].as_json(), "error": item["error"]} for item in result.rejected]
    if result.accepted:
        await asyncio.to_thread(store.spend_written_elsewhere)  # running gateways reload their counters
    return ImportOutcome(reconciliation, rows, result.accepted, result.duplicates, rejected)
