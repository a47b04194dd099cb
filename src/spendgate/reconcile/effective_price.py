"""Effective prices: when the provider consistently bills a fixed fraction of the list price
(a negotiated discount, committed-use credits), propose the overrides entry that explains it.

Evidence comes from rows whose provider cost is *billed* (cost lines naming the model, see
``provider_side``): their billed cost against the list price of the same usage. Rows under
``min_row_list_usd`` at list are left out (a fraction of a cent says nothing about a rate).
When every model's ratio is the same within ``max_spread`` over at least ``min_days`` days, one
entry covers the provider (``model = "*"``); otherwise each model that is consistent on its own
gets an entry. No entry is proposed when the ledger already prices those rows as billed (the
override is in place), when the ratio is within ``min_discount_percent`` of the list price, or
when the provider bills above list (a discount cannot express it: the evidence says so).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from spendgate.money import format_usd
from spendgate.reconcile.arithmetic import ZERO, exact_sum, ratio
from spendgate.reconcile.compare import ReconcileRow, Reconciliation, Verdict
from spendgate.reconcile.provider_side import BILLED, model_key

__all__ = ("PriceEvidence", "PriceProposal", "propose_overrides")


@dataclass(frozen=True, slots=True)
class PriceEvidence:
    """Billed against list for one model over the range."""

    model: str
    days: int
    first_day: date
    last_day: date
    billed_usd: Decimal
    list_usd: Decimal
    # Over the rows where both sides count the same usage (matched or priced differently):
    # the provider's billed cost and the ledger's, to tell whether the ledger already applies it.
    same_usage_billed_usd: Decimal
    same_usage_ledger_usd: Decimal
    ratio: Decimal  # billed / list, to 6 decimals
    min_ratio: Decimal
    max_ratio: Decimal

    @property
    def spread(self) -> Decimal:
        return max(self.ratio - self.min_ratio, self.max_ratio - self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "days": self.days,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "billed_usd": format_usd(self.billed_usd),
            "list_usd": format_usd(self.list_usd),
            "same_usage_billed_usd": format_usd(self.same_usage_billed_usd),
            "same_usage_ledger_usd": format_usd(self.same_usage_ledger_usd),
            "ratio": format_usd(self.ratio),
            "min_ratio": format_usd(self.min_ratio),
            "max_ratio": format_usd(self.max_ratio),
        }


@dataclass(frozen=True, slots=True)
class PriceProposal:
    """An overrides entry (``SPENDGATE_PRICES``) that makes the ledger price as the provider bills."""

    provider: str
    model: str  # a model, or "*" for every model of the provider
    discount_percent: Decimal
    effective_from: date
    evidence: tuple[PriceEvidence, ...]

    def toml(self) -> str:
        """The entry, with its evidence as comments, ready to append to the overrides file."""
        billed = exact_sum(item.billed_usd for item in self.evidence)
        listed = exact_sum(item.list_usd for item in self.evidence)
        first = min(item.first_day for item in self.evidence)
        last = max(item.last_day for item in self.evidence)
        models = _comment_text(", ".join(item.model for item in self.evidence))
        lines = [
            f"# proposed by spendgate reconcile: {self.provider} billed ${format_usd(billed)} for usage",
            f"# listed at ${format_usd(listed)} ({first.isoformat()} to {last.isoformat()}; {models})",
            "[[price]]",
            f"provider = {_toml_string(self.provider)}",
            f"model = {_toml_string(self.model)}",
            f'effective_from = "{self.effective_from.isoformat()}"',
            f'discount_percent = "{format_usd(self.discount_percent)}"',
        ]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "discount_percent": format_usd(self.discount_percent),
            "effective_from": self.effective_from.isoformat(),
            "evidence": [item.as_json() for item in self.evidence],
            "toml": self.toml(),
        }


def propose_overrides(
    reconciliation: Reconciliation,
    *,
    min_days: int = 3,
    max_spread: Decimal = Decimal("0.005"),
    min_discount_percent: Decimal = Decimal("0.5"),
    min_row_list_usd: Decimal = Decimal("0.01"),
) -> tuple[list[PriceProposal], list[PriceEvidence]]:
    """The proposed entries, and the evidence for every model that had billed rows."""
    rows_by_model: dict[str, list[ReconcileRow]] = {}
    for row in reconciliation.rows:
        if _is_evidence(row, min_row_list_usd):
            rows_by_model.setdefault(model_key(row.model), []).append(row)
    evidence = [_evidence(rows) for _, rows in sorted(rows_by_model.items())]
    if not evidence:
        return [], []

    def proposal(model: str, items: Sequence[PriceEvidence]) -> PriceProposal | None:
        billed = exact_sum(item.billed_usd for item in items)
        listed = exact_sum(item.list_usd for item in items)
        overall = ratio(billed, listed)
        if overall is None or overall > 1:
            return None
        same_billed = exact_sum(item.same_usage_billed_usd for item in items)
        same_ledger = exact_sum(item.same_usage_ledger_usd for item in items)
        if same_billed and reconciliation.tolerance.usd_close(same_billed, same_ledger):
            return None  # the ledger already prices the usage it shares with the provider as billed
        days = {day for item in items for day in _days(rows_by_model[model_key(item.model)])}
        spread = max(max(overall - item.min_ratio, item.max_ratio - overall) for item in items)
        discount = ((1 - overall) * 100).quantize(Decimal("0.01"))
        if len(days) < min_days or spread > max_spread or discount < min_discount_percent:
            return None
        first = min(item.first_day for item in items)
        return PriceProposal(reconciliation.provider, model, discount, first, tuple(items))

    everything = proposal("*", evidence)
    if everything is not None and len(evidence) > 1:
        return [everything], evidence
    proposals = [proposal(item.model, [item]) for item in evidence]
    return [p for p in proposals if p is not None], evidence


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escaping is valid TOML (a model name comes from the provider)."""
    return json.dumps(text)


def _comment_text(text: str) -> str:
    """Text for a TOML comment: a character that could end the line is shown as ``?``."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _is_evidence(row: ReconcileRow, min_row_list_usd: Decimal) -> bool:
    return (
        row.provider_cost_basis == BILLED
        and row.provider.cost_usd is not None
        and row.provider_list_cost_usd is not None
        and row.provider_list_cost_usd >= min_row_list_usd
    )


def _days(rows: Sequence[ReconcileRow]) -> set[date]:
    return {row.day for row in rows}


def _evidence(rows: Sequence[ReconcileRow]) -> PriceEvidence:
    # One ratio per day: a day's rows (several keys) share the model's billed lines.
    by_day: dict[date, list[ReconcileRow]] = {}
    for row in rows:
        by_day.setdefault(row.day, []).append(row)
    daily = []
    for day_rows in by_day.values():
        billed = exact_sum(row.provider.cost_usd or ZERO for row in day_rows)
        listed = exact_sum(row.provider_list_cost_usd or ZERO for row in day_rows)
        daily.append(ratio(billed, listed))
    ratios = [r for r in daily if r is not None]
    billed = exact_sum(row.provider.cost_usd or ZERO for row in rows)
    listed = exact_sum(row.provider_list_cost_usd or ZERO for row in rows)
    overall = ratio(billed, listed) or ZERO
    same = [row for row in rows if row.verdict in (Verdict.MATCHED, Verdict.PRICED_DIFFERENTLY)]
    return PriceEvidence(
        model=rows[0].model,
        days=len(by_day),
        first_day=min(by_day),
        last_day=max(by_day),
        billed_usd=billed,
        list_usd=listed,
        same_usage_billed_usd=exact_sum(row.provider.cost_usd or ZERO for row in same),
        same_usage_ledger_usd=exact_sum(row.ledger.cost_usd or ZERO for row in same),
        ratio=overall,
        min_ratio=min(ratios, default=overall),
        max_ratio=max(ratios, default=overall),
    )
