"""What the simulated provider's admin reports say: usage and cost records, and ways to make them.

Records are kept at the finest grain the fake can be asked for (day, model, key, project or
workspace, tier…) in spendgate's token conventions; ``admin_api`` groups and renders them in
each provider's own shape and conventions when a report is requested.

- ``usage_from_log`` turns what the simulator served (its ``SimulatorLog``) into usage records,
  so the fake reports exactly the traffic that reached it, each request under the API key that
  sent it: traffic through the gateway under the gateway's upstream key, direct traffic under
  its own.
- ``costs_from_usage`` bills usage records at the genai-prices list price times
  ``billed_ratio`` (0.85: a negotiated 15% discount), as the providers' cost reports do: per
  token kind (Anthropic's ``token_type``) or line item (``"gpt-4o, input"``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal

from spendgate.pricing import PriceBook, cost
from spendgate.pricing.rates import exact_product
from spendgate.simulator.log import RequestRecord
from spendgate.usage.anthropic import anthropic_usage
from spendgate.usage.model import Usage
from spendgate.usage.openai import openai_usage

__all__ = ("AdminDataset", "CostRecord", "UsageRecord", "costs_from_usage", "key_id_for", "usage_from_log")

LONG_CONTEXT = "200k-1M"
SHORT_CONTEXT = "0-200k"
# Input size that puts a request above the 200K long-context threshold.
_LONG_CONTEXT_INPUT = 200_001
_OPENAI_PATHS = {
    "/v1/chat/completions": "completions",
    "/v1/completions": "completions",
    "/v1/responses": "completions",
    "/v1/embeddings": "embeddings",
}
_ANTHROPIC_PATHS = {"/v1/messages": "messages"}


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Usage the provider counted, in spendgate's conventions (``input_tokens`` counts every
    input token; ``cache_write_tokens`` every cache write, ``cache_write_1h_tokens`` the 1-hour
    part of them). ``service_tier`` is normalized (``standard``, ``batch``, ``flex``…)."""

    day: date
    provider: str  # openai or anthropic
    model: str
    api_key_id: str | None = None
    project_or_workspace_id: str | None = None
    service_tier: str = "standard"
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    requests: int = 1
    endpoint: str = ""  # openai: completions (default) or embeddings; anthropic: messages
    context_window: str = SHORT_CONTEXT
    user_id: str | None = None

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens,
            output_tokens=self.output_tokens,
            service_tier=self.service_tier,
        )

    @property
    def report(self) -> str:
        """The usage report this record appears in."""
        if self.provider == "anthropic":
            return "messages"
        return self.endpoint or "completions"


@dataclass(frozen=True, slots=True)
class CostRecord:
    """A cost the provider billed, in USD. ``line_item`` is OpenAI's line item or Anthropic's
    description; ``model``, ``token_type``… are what Anthropic shows when grouped by description."""

    day: date
    provider: str
    amount_usd: Decimal
    line_item: str
    model: str | None = None
    project_or_workspace_id: str | None = None
    api_key_id: str | None = None
    cost_type: str = "tokens"
    token_type: str | None = None
    service_tier: str | None = "standard"
    context_window: str | None = SHORT_CONTEXT


@dataclass
class AdminDataset:
    """The records the fake admin API reports from. Mutable on purpose: a test or the demo adds
    to it while the simulator serves (each instance belongs to one app)."""

    usage: list[UsageRecord] = field(default_factory=list)
    costs: list[CostRecord] = field(default_factory=list)

    def add(self, usage: Iterable[UsageRecord] = (), costs: Iterable[CostRecord] = ()) -> AdminDataset:
        self.usage.extend(usage)
        self.costs.extend(costs)
        return self


def key_id_for(api_key: str) -> str:
    """The id the fake reports for an API key it has no name for (never the key itself)."""
    return "key_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _api_key(record: RequestRecord) -> str | None:
    headers = record.headers
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization", "")
    return authorization[7:].strip() if authorization[:7].lower() == "bearer " else None


def usage_from_log(
    records: Iterable[RequestRecord],
    *,
    day: date,
    key_ids: Mapping[str, str] | None = None,
    projects: Mapping[str, str] | None = None,
) -> list[UsageRecord]:
    """One usage record per request the simulator answered with usage, counted on ``day``.

    ``key_ids`` names the API keys (key -> id, e.g. the gateway's upstream key -> ``key_gateway``);
    other keys get ``key_id_for(key)``. ``projects`` maps key ids to a project (OpenAI) or
    workspace (Anthropic) id.
    """
    found: list[UsageRecord] = []
    for record in records:
        if record.status != 200 or record.reported_usage is None or not record.reported_model:
            continue
        provider, endpoint = _report_of(record.path)
        if provider is None:
            continue
        if provider == "openai":
            usage = openai_usage(record.reported_usage, _service_tier_of(record))
        else:
            usage = anthropic_usage(record.reported_usage)
        if usage is None:
            continue
        key = _api_key(record) or ""
        key_id = (key_ids or {}).get(key) or key_id_for(key)
        found.append(
            UsageRecord(
                day=day,
                provider=provider,
                model=record.reported_model,
                api_key_id=key_id,
                project_or_workspace_id=(projects or {}).get(key_id),
                service_tier=usage.service_tier or "standard",
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                output_tokens=usage.output_tokens,
                requests=1,
                endpoint=endpoint,
                context_window=LONG_CONTEXT if usage.input_tokens > 200_000 else SHORT_CONTEXT,
            )
        )
    return found


def _report_of(path: str) -> tuple[str | None, str]:
    if path in _OPENAI_PATHS:
        return "openai", _OPENAI_PATHS[path]
    if path in _ANTHROPIC_PATHS:
        return "anthropic", _ANTHROPIC_PATHS[path]
    return None, ""


def _service_tier_of(record: RequestRecord) -> str | None:
    # The tier OpenAI reports sits beside usage in the answer; the log keeps the request's.
    body = record.body
    return body.get("service_tier") if isinstance(body, dict) else None


def costs_from_usage(
    usage: Iterable[UsageRecord], prices: PriceBook, *, billed_ratio: Decimal = Decimal(1)
) -> list[CostRecord]:
    """What the provider bills for ``usage``: list price x ``billed_ratio``, one record per kind
    of token. A model ``prices`` cannot price is not billed (choose priced models)."""
    if not isinstance(billed_ratio, Decimal) or billed_ratio < 0:
        raise ValueError("billed_ratio must be a non-negative Decimal")
    billed: list[CostRecord] = []
    for record in usage:
        at = datetime.combine(record.day, time(), UTC)
        sheet = prices.sheet(record.provider, record.model, at, record.service_tier)
        if sheet is None:
            continue
        rates = (
            sheet.rates_for(Usage(input_tokens=_LONG_CONTEXT_INPUT))
            if record.context_window == LONG_CONTEXT
            else sheet.base
        )
        if rates.request_kusd:  # billed per token kind below: the request price is not one of them
            rates = replace(rates, request_kusd=Decimal(0))
        for kind, token_type, part in _token_parts(record):
            amount = exact_product(cost(part, rates), billed_ratio)
            if not amount:
                continue
            billed.append(
                CostRecord(
                    day=record.day,
                    provider=record.provider,
                    amount_usd=amount,
                    line_item=_line_item(record, kind),
                    model=record.model,
                    project_or_workspace_id=record.project_or_workspace_id,
                    api_key_id=record.api_key_id,
                    token_type=token_type,
                    service_tier=record.service_tier,
                    context_window=record.context_window,
                )
            )
    return billed


def _token_parts(record: UsageRecord) -> list[tuple[str, str, Usage]]:
    """(line item kind, Anthropic token_type, the usage of that kind alone), each kind once."""
    writes_5m = record.cache_write_tokens - record.cache_write_1h_tokens
    writes_1h = record.cache_write_1h_tokens
    uncached = record.input_tokens - record.cached_input_tokens - record.cache_write_tokens
    return [
        ("input", "uncached_input_tokens", Usage(input_tokens=uncached)),
        (
            "cached input",
            "cache_read_input_tokens",
            Usage(input_tokens=record.cached_input_tokens, cached_input_tokens=record.cached_input_tokens),
        ),
        (
            "cache write",
            "cache_creation.ephemeral_5m_input_tokens",
            Usage(input_tokens=writes_5m, cache_write_tokens=writes_5m),
        ),
        (
            "cache write 1h",
            "cache_creation.ephemeral_1h_input_tokens",
            Usage(input_tokens=writes_1h, cache_write_tokens=writes_1h, cache_write_1h_tokens=writes_1h),
        ),
        ("output", "output_tokens", Usage(output_tokens=record.output_tokens)),
    ]


def _line_item(record: UsageRecord, kind: str) -> str:
    """A line item per model, kind of token, tier and context window, as the providers split them."""
    if record.provider == "anthropic":
        described = f"{record.model} usage - {kind}"
        if record.service_tier != "standard":
            described += f", {record.service_tier}"
        return described + (", long context" if record.context_window == LONG_CONTEXT else "")
    tier = "" if record.service_tier == "standard" else f" ({record.service_tier})"
    return f"{record.model}, {kind}{tier}"
