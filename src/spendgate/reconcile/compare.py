"""The ledger beside the provider's own report, per day, model and provider API key (pure).

**Which provider key is the gateway's.** The ledger does not know under which provider API key
its proxied traffic went upstream: it went under the gateway's own credential. So each day,
proxied ledger events are put beside the traffic of one provider key: the one given in
``gateway_key_ids`` that was used that day, or else the key whose usage that day overlaps the
ledger's most (the sum over models of the smaller of the two token counts). The usage of every
other key is traffic the gateway never saw: someone used a provider key directly. Ledger events
imported from the provider's report carry the key they were reported under
(``LedgerUsageRow.provider_key_id``) and sit beside that key's usage, so an import is never
counted twice. When the provider does not group by key (``api_key_id`` null) all of its usage
sits beside the proxied events.

**Verdicts**, per row (tokens are input and output; "close" means within ``Tolerance``):

- ``matched``: tokens close and costs close (|diff| <= max($0.01, 0.5%) by default);
- ``priced_differently``: tokens close, costs not: the same usage, another price (a negotiated
  discount, credits, a price the ledger lacks). ``effective_rate`` is the provider's cost over
  the ledger's;
- ``unseen_by_gateway``: the provider counted more than the ledger holds (all of it, for a key
  used directly): ``unseen_usd`` is the provider's cost beyond the ledger's;
- ``gateway_only``: the ledger holds more than the provider counted (traffic the provider did
  not bill, or has not reported yet).

``drift_percent`` is (provider - ledger) / provider x 100 over the range: positive when the
provider bills more than the ledger knows of. Costs the provider bills outside token usage
(``provider_other_usd``) are shown apart and left out of the totals and the drift.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from spendgate.money import format_usd
from spendgate.pricing import PriceBook
from spendgate.providers.admin import ProviderReport, Refused
from spendgate.reconcile.arithmetic import ZERO, exact_sum, percent, ratio
from spendgate.reconcile.ledger_side import LedgerUsageRow
from spendgate.reconcile.provider_side import OtherCost, ProviderLine, model_key, provider_side

__all__ = (
    "ROW_FIELDS",
    "UNKEYED",
    "ReconcileRow",
    "Reconciliation",
    "Tally",
    "Tolerance",
    "Verdict",
    "compare",
    "reconcile",
)


class Verdict(StrEnum):
    MATCHED = "matched"
    PRICED_DIFFERENTLY = "priced_differently"
    UNSEEN_BY_GATEWAY = "unseen_by_gateway"
    GATEWAY_ONLY = "gateway_only"


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far apart two figures may be and still match: the larger of an absolute and a
    relative (to the larger figure) margin."""

    usd: Decimal = Decimal("0.01")
    relative: Decimal = Decimal("0.005")
    tokens: int = 0

    def usd_close(self, a: Decimal, b: Decimal) -> bool:
        return abs(a - b) <= max(self.usd, self.relative * max(abs(a), abs(b)))

    def tokens_close(self, a: int, b: int) -> bool:
        return abs(a - b) <= max(Decimal(self.tokens), self.relative * max(a, b))


@dataclass(frozen=True, slots=True)
class Tally:
    """One side's figures for a row. ``cost_usd`` None: unknown (unpriced)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    requests: int | None = 0
    cost_usd: Decimal | None = ZERO

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def empty(self) -> bool:
        return not self.tokens and not self.cost_usd


def _ledger_tally(rows: Sequence[LedgerUsageRow]) -> Tally:
    costs = [row.cost_usd for row in rows if row.cost_usd is not None]
    return Tally(
        input_tokens=sum(row.input_tokens for row in rows),
        cached_input_tokens=sum(row.cached_input_tokens for row in rows),
        cache_write_tokens=sum(row.cache_write_tokens for row in rows),
        cache_write_1h_tokens=sum(row.cache_write_1h_tokens for row in rows),
        output_tokens=sum(row.output_tokens for row in rows),
        requests=sum(row.requests for row in rows),
        cost_usd=exact_sum(costs) if costs or not rows else None,
    )


def _provider_tally(lines: Sequence[ProviderLine]) -> Tally:
    requests = [line.requests for line in lines]
    costs = [line.cost_usd for line in lines]
    return Tally(
        input_tokens=sum(line.input_tokens for line in lines),
        cached_input_tokens=sum(line.cached_input_tokens for line in lines),
        cache_write_tokens=sum(line.cache_write_tokens for line in lines),
        cache_write_1h_tokens=sum(line.cache_write_1h_tokens for line in lines),
        output_tokens=sum(line.output_tokens for line in lines),
        requests=None if any(r is None for r in requests) else sum(r for r in requests if r is not None),
        cost_usd=None if any(c is None for c in costs) else exact_sum(c for c in costs if c is not None),
    )


@dataclass(frozen=True, slots=True)
class ReconcileRow:
    """One day, model and provider key: the ledger's figures beside the provider's."""

    day: date
    model: str
    api_key_id: str | None  # the provider key(s), comma-separated when the gateway used several
    project_or_workspace_id: str | None
    gateway_traffic: bool  # this row holds the gateway's proxied traffic
    ledger: Tally
    provider: Tally
    verdict: Verdict
    provider_list_cost_usd: Decimal | None = None
    provider_cost_basis: str | None = None  # billed, list (see provider_side), or None
    ledger_unpriced_requests: int = 0
    service_tiers: tuple[str, ...] = ()
    import_key_id: str | None = None  # the one provider key an import of this row is tagged with

    @property
    def diff_usd(self) -> Decimal | None:
        if self.ledger.cost_usd is None or self.provider.cost_usd is None:
            return None
        return self.provider.cost_usd - self.ledger.cost_usd

    @property
    def unseen_usd(self) -> Decimal:
        if self.verdict is not Verdict.UNSEEN_BY_GATEWAY or self.provider.cost_usd is None:
            return ZERO
        return max(self.provider.cost_usd - (self.ledger.cost_usd or ZERO), ZERO)

    @property
    def effective_rate(self) -> Decimal | None:
        """The provider's cost over the ledger's for the same row (0.85: 15% below ours)."""
        if self.provider.cost_usd is None or not self.ledger.cost_usd:
            return None
        return ratio(self.provider.cost_usd, self.ledger.cost_usd, 4)

    def as_json(self) -> dict[str, Any]:
        ledger, provider = self.ledger, self.provider
        return {
            "day": self.day.isoformat(),
            "model": self.model,
            "api_key_id": self.api_key_id,
            "project_or_workspace_id": self.project_or_workspace_id,
            "gateway_traffic": self.gateway_traffic,
            "ledger_cost_usd": _usd(ledger.cost_usd),
            "provider_cost_usd": _usd(provider.cost_usd),
            "diff_usd": _usd(self.diff_usd),
            "ledger_input_tokens": ledger.input_tokens,
            "provider_input_tokens": provider.input_tokens,
            "ledger_output_tokens": ledger.output_tokens,
            "provider_output_tokens": provider.output_tokens,
            "ledger_cached_input_tokens": ledger.cached_input_tokens,
            "provider_cached_input_tokens": provider.cached_input_tokens,
            "ledger_cache_write_tokens": ledger.cache_write_tokens,
            "provider_cache_write_tokens": provider.cache_write_tokens,
            "ledger_requests": ledger.requests,
            "provider_requests": provider.requests,
            "provider_cost_basis": self.provider_cost_basis,
            "provider_list_cost_usd": _usd(self.provider_list_cost_usd),
            "effective_rate": _plain(self.effective_rate),
            "ledger_unpriced_requests": self.ledger_unpriced_requests,
            "verdict": self.verdict.value,
            "unseen_usd": _usd(self.unseen_usd),
        }


# The columns of a reconciliation's rows, in ``as_json`` order (for CSV and tables).
ROW_FIELDS = (
    "day",
    "model",
    "api_key_id",
    "project_or_workspace_id",
    "gateway_traffic",
    "ledger_cost_usd",
    "provider_cost_usd",
    "diff_usd",
    "ledger_input_tokens",
    "provider_input_tokens",
    "ledger_output_tokens",
    "provider_output_tokens",
    "ledger_cached_input_tokens",
    "provider_cached_input_tokens",
    "ledger_cache_write_tokens",
    "provider_cache_write_tokens",
    "ledger_requests",
    "provider_requests",
    "provider_cost_basis",
    "provider_list_cost_usd",
    "effective_rate",
    "ledger_unpriced_requests",
    "verdict",
    "unseen_usd",
)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    provider: str
    since: date
    until: date
    rows: tuple[ReconcileRow, ...]
    tolerance: Tolerance
    other_costs: tuple[OtherCost, ...] = ()
    refused: tuple[Refused, ...] = ()
    gateway_keys: dict[date, tuple[str | None, ...]] = field(default_factory=dict)

    @property
    def total_ledger_usd(self) -> Decimal:
        return exact_sum(row.ledger.cost_usd or ZERO for row in self.rows)

    @property
    def total_provider_usd(self) -> Decimal:
        return exact_sum(row.provider.cost_usd or ZERO for row in self.rows)

    @property
    def unseen_usd(self) -> Decimal:
        return exact_sum(row.unseen_usd for row in self.rows)

    @property
    def provider_other_usd(self) -> Decimal:
        return exact_sum(cost.amount_usd for cost in self.other_costs)

    @property
    def drift_percent(self) -> Decimal | None:
        """(provider - ledger) / provider x 100, to 4 decimals; None when the provider billed
        nothing but the ledger holds spend (0 when both are empty)."""
        provider, ledger = self.total_provider_usd, self.total_ledger_usd
        if not provider:
            return ZERO if not ledger else None
        return percent(provider - ledger, provider)

    def verdict_counts(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for row in self.rows:
            counts[row.verdict.value] += 1
        return counts

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows": [row.as_json() for row in self.rows],
            "total_ledger_usd": format_usd(self.total_ledger_usd),
            "total_provider_usd": format_usd(self.total_provider_usd),
            "drift_percent": _plain(self.drift_percent),
            "unseen_usd": format_usd(self.unseen_usd),
            "verdicts": self.verdict_counts(),
            "provider_other_usd": format_usd(self.provider_other_usd),
            "provider_other_costs": [
                {
                    "day": cost.day.isoformat(),
                    "line_item": cost.line_item,
                    "project_or_workspace_id": cost.project_or_workspace_id,
                    "cost_type": cost.cost_type,
                    "cost_usd": format_usd(cost.amount_usd),
                }
                for cost in self.other_costs
            ],
            "refused": [{"where": item.where, "reason": item.reason} for item in self.refused],
            # The provider key(s) the gateway's proxied traffic was put beside, day by day.
            "gateway_key_ids": {
                day.isoformat(): [key for key in keys if key is not None]
                for day, keys in sorted(self.gateway_keys.items())
            },
            "tolerance": {
                "usd": format_usd(self.tolerance.usd),
                "relative": _plain(self.tolerance.relative),
                "tokens": self.tolerance.tokens,
            },
        }


def reconcile(
    report: ProviderReport,
    ledger: Iterable[LedgerUsageRow],
    prices: PriceBook,
    *,
    tolerance: Tolerance = Tolerance(),
    gateway_key_ids: Collection[str] | None = None,
) -> Reconciliation:
    """The ledger's rows of ``report.provider`` beside ``report``, over ``report``'s days.

    ``prices`` prices the provider's usage where it bills no line per model (a ``PriceBook``
    without overrides: the list price). ``gateway_key_ids``: the provider key ids the gateway
    uses upstream, when known (otherwise inferred per day, see the module).
    """
    side = provider_side(report.usage, report.costs, prices)
    since, until = report.since, report.until
    return compare(
        report.provider,
        since,
        until,
        [row for row in ledger if since <= row.day <= until],
        [line for line in side.lines if since <= line.day <= until],
        tolerance=tolerance,
        gateway_key_ids=gateway_key_ids,
        other_costs=[cost for cost in side.other_costs if since <= cost.day <= until],
        refused=report.refused,
    )


_GATEWAY = "\x00gateway"  # the join key of the gateway's row of a day and model
# The provider key id imported events carry when the provider reported them under no key
# (Anthropic's Console workbench) while other usage of the day had one.
UNKEYED = "(no key)"


def compare(
    provider: str,
    since: date,
    until: date,
    ledger: Sequence[LedgerUsageRow],
    lines: Sequence[ProviderLine],
    *,
    tolerance: Tolerance = Tolerance(),
    gateway_key_ids: Collection[str] | None = None,
    other_costs: Sequence[OtherCost] = (),
    refused: Sequence[Refused] = (),
) -> Reconciliation:
    """The rows of a reconciliation from both sides, already in range (see the module)."""
    gateway_keys = _gateway_keys(ledger, lines, gateway_key_ids)
    ledger_groups: dict[tuple[date, str, str | None], list[LedgerUsageRow]] = {}
    for row in ledger:
        slot = _ledger_slot(row.provider_key_id, gateway_keys.get(row.day, ()))
        ledger_groups.setdefault((row.day, model_key(row.model), slot), []).append(row)
    line_groups: dict[tuple[date, str, str | None], list[ProviderLine]] = {}
    for line in lines:
        slot = _GATEWAY if line.api_key_id in gateway_keys.get(line.day, ()) else line.api_key_id
        line_groups.setdefault((line.day, model_key(line.model), slot), []).append(line)

    rows = []
    for group in sorted(set(ledger_groups) | set(line_groups), key=_order):
        day, _, slot = group
        ledger_rows = ledger_groups.get(group, [])
        provider_lines = line_groups.get(group, [])
        ledger_tally = _ledger_tally(ledger_rows)
        provider_tally = _provider_tally(provider_lines)
        if ledger_tally.empty and provider_tally.empty:
            continue
        rows.append(_row(day, slot, ledger_rows, provider_lines, ledger_tally, provider_tally, tolerance))
    return Reconciliation(
        provider, since, until, tuple(rows), tolerance, tuple(other_costs), tuple(refused), gateway_keys
    )


def _ledger_slot(provider_key_id: str | None, gateway: tuple[str | None, ...]) -> str | None:
    """Beside which provider key a ledger row sits: proxied events beside the gateway's."""
    if provider_key_id is None:
        return _GATEWAY
    key = None if provider_key_id == UNKEYED else provider_key_id
    return _GATEWAY if key in gateway else key


def _order(group: tuple[date, str, str | None]) -> tuple[Any, ...]:
    day, model, slot = group
    return (day, model, slot != _GATEWAY, slot or "")


def _row(
    day: date,
    slot: str | None,
    ledger_rows: list[LedgerUsageRow],
    provider_lines: list[ProviderLine],
    ledger: Tally,
    provider: Tally,
    tolerance: Tolerance,
) -> ReconcileRow:
    gateway = slot == _GATEWAY
    keys = sorted({line.api_key_id for line in provider_lines if line.api_key_id is not None})
    if not gateway:
        keys = [slot] if slot is not None else []
    projects = sorted({line.project_or_workspace_id for line in provider_lines if line.project_or_workspace_id})
    model = provider_lines[0].model if provider_lines else ledger_rows[0].model
    list_costs = [line.list_cost_usd for line in provider_lines]
    bases = {line.cost_basis for line in provider_lines}
    return ReconcileRow(
        day=day,
        model=model,
        api_key_id=",".join(keys) or None,
        project_or_workspace_id=",".join(projects) or None,
        gateway_traffic=gateway,
        ledger=ledger,
        provider=provider,
        verdict=verdict(ledger, provider, tolerance),
        provider_list_cost_usd=None
        if not provider_lines or any(c is None for c in list_costs)
        else exact_sum(c for c in list_costs if c is not None),
        provider_cost_basis=bases.pop() if len(bases) == 1 else ("mixed" if bases else None),
        ledger_unpriced_requests=sum(row.unpriced_requests for row in ledger_rows),
        service_tiers=tuple(sorted({tier for line in provider_lines for tier in line.service_tiers})),
        import_key_id=(keys[0] if keys else None) if gateway else (slot if slot is not None else UNKEYED),
    )


def verdict(ledger: Tally, provider: Tally, tolerance: Tolerance) -> Verdict:
    """The verdict of one row (see the module)."""
    if provider.empty:
        return Verdict.GATEWAY_ONLY
    if ledger.empty:
        return Verdict.UNSEEN_BY_GATEWAY
    if tolerance.tokens_close(ledger.input_tokens, provider.input_tokens) and tolerance.tokens_close(
        ledger.output_tokens, provider.output_tokens
    ):
        if ledger.cost_usd is None or provider.cost_usd is None:
            # A price one side lacks (a model the ledger could not price) is a price difference.
            return Verdict.MATCHED if ledger.cost_usd == provider.cost_usd else Verdict.PRICED_DIFFERENTLY
        return (
            Verdict.MATCHED if tolerance.usd_close(ledger.cost_usd, provider.cost_usd) else Verdict.PRICED_DIFFERENTLY
        )
    return Verdict.UNSEEN_BY_GATEWAY if provider.tokens > ledger.tokens else Verdict.GATEWAY_ONLY


def _gateway_keys(
    ledger: Sequence[LedgerUsageRow], lines: Sequence[ProviderLine], configured: Collection[str] | None
) -> dict[date, tuple[str | None, ...]]:
    """The provider key(s) the gateway's proxied traffic went under, day by day."""
    proxied: dict[tuple[date, str], int] = {}
    for row in ledger:
        if row.provider_key_id is None:
            key = (row.day, model_key(row.model))
            proxied[key] = proxied.get(key, 0) + row.input_tokens + row.output_tokens
    usage: dict[date, dict[str | None, dict[str, int]]] = {}
    for line in lines:
        by_model = usage.setdefault(line.day, {}).setdefault(line.api_key_id, {})
        model = model_key(line.model)
        by_model[model] = by_model.get(model, 0) + line.input_tokens + line.output_tokens
    chosen: dict[date, tuple[str | None, ...]] = {}
    for day, by_key in usage.items():
        if set(by_key) == {None}:  # the report is not by key: all of it sits beside the ledger
            chosen[day] = (None,)
            continue
        if configured is not None:
            used = tuple(sorted(key for key in by_key if key is not None and key in configured))
            if used:
                chosen[day] = used
            continue

        def overlap(key: str | None, day: date = day, by_key: dict[str | None, dict[str, int]] = by_key) -> int:
            return sum(min(tokens, proxied.get((day, model), 0)) for model, tokens in by_key[key].items())

        best = max(by_key, key=lambda key: (overlap(key), key or ""), default=None)
        if best is not None and overlap(best) > 0:
            chosen[day] = (best,)
    return chosen


def _usd(amount: Decimal | None) -> str | None:
    return None if amount is None else format_usd(amount)


def _plain(value: Decimal | None) -> str | None:
    return None if value is None else format_usd(value)
