"""Reconciliation: the ledger beside the providers' own usage and cost reports (pure).

``reconcile`` joins a provider's report (``spendgate.providers.admin``) with the ledger's sums
(``ledger_rows_from_report``) per day, model and provider key, with a verdict per row;
``rows_to_import`` says what an import would add, ``propose_overrides`` which negotiated price
explains a consistent difference. No I/O here: the CLI and ``serve`` fetch and store.
"""

from spendgate.reconcile.compare import (
    ROW_FIELDS,
    UNKEYED,
    ReconcileRow,
    Reconciliation,
    Tally,
    Tolerance,
    Verdict,
    compare,
    reconcile,
)
from spendgate.reconcile.effective_price import PriceEvidence, PriceProposal, propose_overrides
from spendgate.reconcile.imports import ImportRow, rows_to_import
from spendgate.reconcile.ledger_side import LedgerUsageRow, ledger_rows_from_report
from spendgate.reconcile.provider_side import OtherCost, ProviderLine, ProviderSide, provider_side

__all__ = (
    "ROW_FIELDS",
    "UNKEYED",
    "ImportRow",
    "LedgerUsageRow",
    "OtherCost",
    "PriceEvidence",
    "PriceProposal",
    "ProviderLine",
    "ProviderSide",
    "ReconcileRow",
    "Reconciliation",
    "Tally",
    "Tolerance",
    "Verdict",
    "compare",
    "ledger_rows_from_report",
    "propose_overrides",
    "provider_side",
    "reconcile",
    "rows_to_import",
)
