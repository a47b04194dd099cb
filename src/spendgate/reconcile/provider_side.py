"""The provider's side of a reconciliation: its usage by day, model and API key, with a cost.

Providers report usage by model but do not always bill by model, so each line's cost comes from
the best source there is:

1. **billed**: the provider's own cost lines for that day and model. Anthropic's cost report
   grouped by ``description`` names the model of each line. OpenAI's costs cannot be grouped by
   model; their ``line_item`` usually starts with it (``"gpt-4o-2024-08-06, input"``), so a line
   item whose first part (before ``", "``) is a model of that day's usage, exactly or without its
   date suffix (``gpt-4o`` for ``gpt-4o-2024-08-06`` when it is the only such model that day), is
   that model's cost. Cost lines are per project or workspace, usage per API key: a line's amount
   is split between the keys of its project or workspace in proportion to their usage at list
   price (``arithmetic.allocate``: the shares add up to the line exactly).
2. **list**: otherwise, the provider's usage priced at the genai-prices list price (no
   overrides: what the provider charges before any deal) in force at the start of the day, at
   the service tier the provider reported; a long-context row (Anthropic ``context_window``
   ``200k-1M``) at the long-context tier. A model genai-prices cannot price has no cost (None).

Cost lines that name no model of the day's usage (web search, storage, display-name line items
such as "Image models") are kept apart as *other* costs: the ledger prices tokens only, so they
are shown beside the comparison, never in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal

from spendgate.pricing import PriceBook, cost
from spendgate.providers.admin.model import ProviderCostRow, ProviderUsageRow
from spendgate.reconcile.arithmetic import ZERO, allocate, exact_sum
from spendgate.reconcile.ledger_side import NO_MODEL
from spendgate.usage.model import Usage

__all__ = ("BILLED", "LIST", "OtherCost", "ProviderLine", "ProviderSide", "model_key", "provider_side")

BILLED = "billed"
LIST = "list"
LONG_CONTEXT = "200k-1M"
_LONG_CONTEXT_INPUT = 200_001  # above the 200K threshold of long-context prices
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_TOKEN_COST_TYPES = frozenset({None, "tokens"})


def model_key(model: str | None) -> str:
    """How models are joined between the ledger and the provider: case-insensitively."""
    return (model or NO_MODEL).strip().lower()


def _undated(model: str) -> str:
    return _DATE_SUFFIX.sub("", model)


@dataclass(frozen=True, slots=True)
class ProviderLine:
    """The provider's usage of one day, model and API key (and its project or workspace)."""

    day: date
    model: str
    api_key_id: str | None
    project_or_workspace_id: str | None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    requests: int | None = None
    list_cost_usd: Decimal | None = ZERO  # None: some of the usage has no list price
    billed_cost_usd: Decimal | None = None  # None: the provider billed no line naming this model
    service_tiers: tuple[str, ...] = ()

    @property
    def cost_usd(self) -> Decimal | None:
        return self.billed_cost_usd if self.billed_cost_usd is not None else self.list_cost_usd

    @property
    def cost_basis(self) -> str | None:
        if self.billed_cost_usd is not None:
            return BILLED
        return LIST if self.list_cost_usd is not None else None


@dataclass(frozen=True, slots=True)
class OtherCost:
    """A cost line the comparison leaves aside (no model of the day's usage)."""

    day: date
    line_item: str | None
    project_or_workspace_id: str | None
    amount_usd: Decimal
    cost_type: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderSide:
    lines: tuple[ProviderLine, ...]
    other_costs: tuple[OtherCost, ...] = field(default=())

    @property
    def other_usd(self) -> Decimal:
        return exact_sum(cost.amount_usd for cost in self.other_costs)


def provider_side(
    usage: Iterable[ProviderUsageRow], costs: Iterable[ProviderCostRow], prices: PriceBook
) -> ProviderSide:
    """Usage summed by (day, model, key, project), each line with its cost (see the module)."""
    lines = _usage_lines(usage, prices)
    models_by_day: dict[date, set[str]] = {}
    for line in lines:
        models_by_day.setdefault(line.day, set()).add(model_key(line.model))

    billed: dict[tuple[date, str, str | None], Decimal] = {}
    other: list[OtherCost] = []
    for row in costs:
        model = _billed_model(row, models_by_day.get(row.day, set()))
        if model is None:
            other.append(OtherCost(row.day, row.line_item, row.project_or_workspace_id, row.amount_usd, row.cost_type))
            continue
        scope = (row.day, model, row.project_or_workspace_id)
        billed[scope] = exact_sum((billed.get(scope, ZERO), row.amount_usd))

    by_scope: dict[tuple[date, str, str | None], list[int]] = {}
    for index, line in enumerate(lines):
        by_scope.setdefault((line.day, model_key(line.model), line.project_or_workspace_id), []).append(index)
    for scope, amount in billed.items():
        members = by_scope.get(scope)
        if not members:  # billed, but no usage reported for it: a line of cost alone
            day, model, project = scope
            lines.append(ProviderLine(day, model, None, project, billed_cost_usd=amount))
            continue
        weights = [_weight(lines[i]) for i in members]
        for index, share in zip(members, allocate(amount, weights), strict=True):
            lines[index] = replace(lines[index], billed_cost_usd=share)
    return ProviderSide(tuple(lines), tuple(other))


def _weight(line: ProviderLine) -> Decimal:
    if line.list_cost_usd:
        return line.list_cost_usd
    return Decimal(line.input_tokens + line.output_tokens)


def _billed_model(row: ProviderCostRow, day_models: set[str]) -> str | None:
    """The model (join key) a cost line bills, or None when it names none of the day's."""
    if row.cost_type not in _TOKEN_COST_TYPES:
        return None
    if row.model:
        return model_key(row.model)
    if not row.line_item:
        return None
    named = row.line_item.split(", ", 1)[0].strip().lower()
    if named in day_models:
        return named
    undated = [model for model in day_models if _undated(model) == named]
    return undated[0] if len(undated) == 1 else None


@dataclass
class _Sum:
    """The running sums of one (day, model, key, project)."""

    first: ProviderUsageRow
    tokens: list[int]  # input, cached input, cache writes, 1-hour cache writes, output
    requests: int | None
    list_costs: list[Decimal | None]
    tiers: set[str]


def _usage_lines(usage: Iterable[ProviderUsageRow], prices: PriceBook) -> list[ProviderLine]:
    sums: dict[tuple[date, str, str | None, str | None], _Sum] = {}
    for row in usage:
        key = (row.day, model_key(row.model), row.api_key_id, row.project_or_workspace_id)
        counts = (
            row.input_tokens,
            row.cached_input_tokens,
            row.cache_write_tokens,
            row.cache_write_1h_tokens,
            row.output_tokens,
        )
        found = sums.get(key)
        if found is None:
            sums[key] = _Sum(
                row, list(counts), row.requests, [list_cost(row, prices)], {row.service_tier or "standard"}
            )
            continue
        found.tokens = [a + b for a, b in zip(found.tokens, counts, strict=True)]
        found.requests = None if found.requests is None or row.requests is None else found.requests + row.requests
        found.list_costs.append(list_cost(row, prices))
        found.tiers.add(row.service_tier or "standard")
    lines = []
    for found in sums.values():
        costs = found.list_costs
        first = found.first
        input_tokens, cached, writes, writes_1h, output = found.tokens
        lines.append(
            ProviderLine(
                first.day,
                first.model or NO_MODEL,
                first.api_key_id,
                first.project_or_workspace_id,
                input_tokens=input_tokens,
                cached_input_tokens=cached,
                cache_write_tokens=writes,
                cache_write_1h_tokens=writes_1h,
                output_tokens=output,
                requests=found.requests,
                list_cost_usd=None if any(c is None for c in costs) else exact_sum(c for c in costs if c is not None),
                service_tiers=tuple(sorted(found.tiers)),
            )
        )
    return lines


def list_cost(row: ProviderUsageRow, prices: PriceBook) -> Decimal | None:
    """What ``row``'s usage costs at the list price of its day, tier and context window."""
    if row.model is None:
        return None
    at = datetime.combine(row.day, time(), UTC)
    sheet = prices.sheet(row.provider, row.model, at, row.service_tier)
    if sheet is None:
        return None
    rates = sheet.base
    if row.context_window == LONG_CONTEXT:
        rates = sheet.rates_for(Usage(input_tokens=_LONG_CONTEXT_INPUT))
    per_request = rates.request_kusd
    if not per_request:
        return cost(row.usage(), rates)
    # ``cost`` charges one request's price; an aggregate row has ``requests`` of them.
    token_cost = cost(row.usage(), replace(rates, request_kusd=ZERO))
    return exact_sum((token_cost, (per_request * (row.requests or 0)).scaleb(-3)))
