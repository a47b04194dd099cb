"""What a provider import adds to the ledger: the provider's usage minus what the ledger holds.

Per row of a reconciliation (day, model, provider key), each token count and the cost are the
provider's minus the ledger's, never below zero: proxied traffic is never counted twice, and
usage the ledger already holds (proxied, or imported before under the same key) is not imported
again, so re-running an import after it was stored finds nothing to add. The rows say under which
provider key they were reported (``api_key_id``; ``UNKEYED`` for usage the provider reported under
no key): imported events must keep it (``LedgerUsageRow.provider_key_id``) for the next
reconciliation to put them beside that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from spendgate.money import format_usd
from spendgate.reconcile.arithmetic import ZERO
from spendgate.reconcile.compare import Reconciliation

__all__ = ("ImportRow", "rows_to_import")


@dataclass(frozen=True, slots=True)
class ImportRow:
    """Usage of one day, model and provider key that the ledger lacks, to become one event."""

    day: date
    model: str
    api_key_id: str | None
    project_or_workspace_id: str | None
    service_tier: str | None  # the provider's tier when the row had one only
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    requests: int | None  # None: the provider does not count requests (Anthropic)
    cost_usd: Decimal | None  # the provider's cost beyond the ledger's; None when unknown
    gateway_traffic: bool  # the surplus of the gateway's own key (requests that bypassed it)

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "model": self.model,
            "api_key_id": self.api_key_id,
            "project_or_workspace_id": self.project_or_workspace_id,
            "service_tier": self.service_tier,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "output_tokens": self.output_tokens,
            "requests": self.requests,
            "cost_usd": None if self.cost_usd is None else format_usd(self.cost_usd),
            "gateway_traffic": self.gateway_traffic,
        }


def rows_to_import(reconciliation: Reconciliation) -> list[ImportRow]:
    """The usage to import: provider minus ledger per day, model and key, never negative."""
    found = []
    for row in reconciliation.rows:
        provider, ledger = row.provider, row.ledger
        if provider.empty:
            continue
        cached = max(provider.cached_input_tokens - ledger.cached_input_tokens, 0)
        writes = max(provider.cache_write_tokens - ledger.cache_write_tokens, 0)
        writes_1h = min(max(provider.cache_write_1h_tokens - ledger.cache_write_1h_tokens, 0), writes)
        # Input counts every input token, so it can never be less than its cached parts.
        input_tokens = max(provider.input_tokens - ledger.input_tokens, cached + writes)
        output_tokens = max(provider.output_tokens - ledger.output_tokens, 0)
        requests = None if provider.requests is None else max(provider.requests - (ledger.requests or 0), 0)
        cost = None if provider.cost_usd is None else max(provider.cost_usd - (ledger.cost_usd or ZERO), ZERO)
        if not (input_tokens or output_tokens or cost):
            continue
        found.append(
            ImportRow(
                day=row.day,
                model=row.model,
                api_key_id=row.import_key_id,
                project_or_workspace_id=row.project_or_workspace_id,
                service_tier=row.service_tiers[0] if len(row.service_tiers) == 1 else None,
                input_tokens=input_tokens,
                cached_input_tokens=cached,
                cache_write_tokens=writes,
                cache_write_1h_tokens=writes_1h,
                output_tokens=output_tokens,
                requests=requests,
                cost_usd=cost,
                gateway_traffic=row.gateway_traffic,
            )
        )
    return found
