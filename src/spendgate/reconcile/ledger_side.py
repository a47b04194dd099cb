"""What the ledger holds for a provider, by day and model: the reconciliation's left-hand side."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from spendgate.reports.spec import ReportResult

__all__ = ("NO_MODEL", "LedgerUsageRow", "ledger_rows_from_report")

NO_MODEL = "(no model)"


@dataclass(frozen=True, slots=True)
class LedgerUsageRow:
    """The ledger's sums for one UTC day and model of one provider.

    ``cost_usd`` sums the priced events (None when none of them is priced; ``unpriced_requests``
    counts the rest). ``provider_key_id`` is the provider's API key id for events imported from
    the provider's own report (``source: provider_import``, tagged with the key they were
    reported under); None for traffic the gateway proxied, which went upstream under the
    gateway's own provider key.
    """

    day: date
    model: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    cost_usd: Decimal | None = Decimal(0)
    unpriced_requests: int = 0
    provider_key_id: str | None = None


def ledger_rows_from_report(
    result: ReportResult, provider: str, *, key_dimension: str | None = None
) -> list[LedgerUsageRow]:
    """The ledger side from a report grouped ``by`` at least ``day`` and ``model``.

    With ``provider`` among the dimensions, rows of other providers are left out (otherwise the
    report must already be limited to ``provider``). ``key_dimension`` names the dimension that
    holds the provider key id of imported events (e.g. ``tag:provider_key``), when the report
    has one.
    """
    missing = {"day", "model"} - set(result.by)
    if missing:
        raise ValueError(f"the report must be grouped by day and model (missing: {', '.join(sorted(missing))})")
    if key_dimension is not None and key_dimension not in result.by:
        raise ValueError(f"the report is not grouped by {key_dimension}")
    rows = []
    for row in result.rows:
        if "provider" in result.by and row.dims.get("provider") != provider:
            continue
        day_text = row.dims.get("day")
        if not day_text:
            continue
        rows.append(
            LedgerUsageRow(
                day=date.fromisoformat(day_text),
                model=row.dims.get("model") or NO_MODEL,
                input_tokens=row.input_tokens,
                cached_input_tokens=row.cached_input_tokens,
                cache_write_tokens=row.cache_write_tokens,
                cache_write_1h_tokens=row.cache_write_1h_tokens,
                output_tokens=row.output_tokens,
                requests=row.requests,
                cost_usd=row.cost_usd if row.cost_known else None,
                unpriced_requests=row.unpriced_requests,
                provider_key_id=row.dims.get(key_dimension) if key_dimension else None,
            )
        )
    return rows
