"""Anthropic's Admin API usage and cost reports.

Endpoints (under the Anthropic base URL), admin key in ``x-api-key`` with ``anthropic-version``:

- ``GET /v1/organizations/usage_report/messages``: pages of buckets ``{"starting_at",
  "ending_at", "results": [...]}``; each result counts ``uncached_input_tokens``,
  ``cache_read_input_tokens``, ``cache_creation: {ephemeral_5m_input_tokens,
  ephemeral_1h_input_tokens}`` and ``output_tokens`` for one group of ``group_by[]`` (no
  request count);
- ``GET /v1/organizations/cost_report``: buckets of ``{"amount", "currency", ...}`` where
  ``amount`` is a decimal string in cents ("123.45" is $1.2345); ``model``, ``token_type``,
  ``cost_type`` and ``service_tier`` are set only when grouped by ``description``.

Query: ``starting_at`` / ``ending_at`` (RFC 3339, end exclusive), ``bucket_width=1d``,
``group_by[]``, ``limit``, ``page``.

Anthropic counts input in three parts that exclude each other; the ledger's ``input_tokens``
counts every input token, so the parts are added up here (as ``spendgate.usage.anthropic``
does for a single answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from spendgate.providers.admin.http import AdminHttp
from spendgate.providers.admin.model import (
    MAX_AMOUNT_USD,
    Fetched,
    ProviderCostRow,
    ProviderUsageRow,
    RecordError,
    Refused,
    amount_text,
    count,
    optional_text,
    utc_day,
)
from spendgate.usage.service_tier import normalize_service_tier

__all__ = (
    "API_VERSION",
    "COST_GROUP_BY",
    "KEY_VARIABLE",
    "USAGE_GROUP_BY",
    "AnthropicAdminClient",
    "parse_cost_page",
    "parse_usage_page",
)

PROVIDER = "anthropic"
KEY_VARIABLE = "ANTHROPIC_ADMIN_KEY"
API_VERSION = "2023-06-01"
USAGE_GROUP_BY = ("model", "api_key_id", "workspace_id", "service_tier", "context_window")
COST_GROUP_BY = ("workspace_id", "description")
MAX_BUCKETS_PER_PAGE = 31


def rfc3339_range(since: date, until: date) -> tuple[str, str]:
    """RFC 3339 instants from the start of ``since`` to the end of ``until`` (inclusive), UTC."""
    if until < since:
        raise ValueError("until is before since")
    start = datetime.combine(since, time(), UTC)
    end = datetime.combine(until + timedelta(days=1), time(), UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _query(since: date, until: date, group_by: Sequence[str], limit: int) -> list[tuple[str, str]]:
    start, end = rfc3339_range(since, until)
    query = [("starting_at", start), ("ending_at", end), ("bucket_width", "1d"), ("limit", str(limit))]
    return query + [("group_by[]", field) for field in group_by]


def _bucket_day(bucket: dict[str, Any]) -> date:
    text = bucket.get("starting_at")
    if not isinstance(text, str) or len(text) > 64:
        raise RecordError(f"starting_at is not an RFC 3339 time: {text!r:.40}")
    try:
        instant = datetime.fromisoformat(text)
    except ValueError as error:
        raise RecordError(f"starting_at is not an RFC 3339 time: {text!r:.40}") from error
    return utc_day(instant)


def _buckets(page: dict[str, Any], where: str) -> list[tuple[str, date | None, list[Any], str | None]]:
    data = page.get("data")
    if not isinstance(data, list):
        return [(where, None, [], "the page has no data list")]
    buckets = []
    for index, bucket in enumerate(data):
        at = f"{where} bucket {index}"
        if not isinstance(bucket, dict):
            buckets.append((at, None, [], "the bucket is not an object"))
            continue
        try:
            day = _bucket_day(bucket)
        except RecordError as error:
            buckets.append((at, None, [], str(error)))
            continue
        results = bucket.get("results")
        if not isinstance(results, list):
            buckets.append((at, None, [], "results is not a list"))
            continue
        buckets.append((f"{where} bucket {day.isoformat()}", day, results, None))
    return buckets


def parse_usage_page(page: dict[str, Any], where: str = "page") -> tuple[list[ProviderUsageRow], list[Refused]]:
    """The usage rows of one page of ``usage_report/messages``, and what was refused."""
    rows: list[ProviderUsageRow] = []
    refused: list[Refused] = []
    for at, day, results, problem in _buckets(page, where):
        if problem is not None or day is None:
            refused.append(Refused(at, problem or "no day"))
            continue
        for index, result in enumerate(results):
            try:
                rows.append(_usage_row(day, result))
            except RecordError as error:
                refused.append(Refused(f"{at} result {index}", str(error)))
    return rows, refused


def _usage_row(day: date, result: Any) -> ProviderUsageRow:
    if not isinstance(result, dict):
        raise RecordError("the result is not an object")
    uncached = count(result, "uncached_input_tokens")
    cache_read = count(result, "cache_read_input_tokens")
    creation = result.get("cache_creation")
    if isinstance(creation, dict):
        writes_5m = count(creation, "ephemeral_5m_input_tokens")
        writes_1h = count(creation, "ephemeral_1h_input_tokens")
    elif creation is None:
        # Older answers have no TTL breakdown; some carry the total as a flat field.
        writes_5m, writes_1h = count(result, "cache_creation_input_tokens"), 0
    else:
        raise RecordError("cache_creation is not an object")
    tier = optional_text(result, "service_tier")
    return ProviderUsageRow(
        day=day,
        provider=PROVIDER,
        model=optional_text(result, "model"),
        api_key_id=optional_text(result, "api_key_id"),
        project_or_workspace_id=optional_text(result, "workspace_id"),
        service_tier=normalize_service_tier(tier) if tier else None,
        input_tokens=uncached + cache_read + writes_5m + writes_1h,
        cached_input_tokens=cache_read,
        cache_write_tokens=writes_5m + writes_1h,
        cache_write_1h_tokens=writes_1h,
        output_tokens=count(result, "output_tokens"),
        requests=None,
        endpoint="messages",
        context_window=optional_text(result, "context_window"),
    )


def parse_cost_page(page: dict[str, Any], where: str = "page") -> tuple[list[ProviderCostRow], list[Refused]]:
    """The cost lines of one page of ``cost_report``, and what was refused."""
    rows: list[ProviderCostRow] = []
    refused: list[Refused] = []
    for at, day, results, problem in _buckets(page, where):
        if problem is not None or day is None:
            refused.append(Refused(at, problem or "no day"))
            continue
        for index, result in enumerate(results):
            try:
                rows.append(_cost_row(day, result))
            except RecordError as error:
                refused.append(Refused(f"{at} result {index}", str(error)))
    return rows, refused


def _cost_row(day: date, result: Any) -> ProviderCostRow:
    if not isinstance(result, dict):
        raise RecordError("the result is not an object")
    cents = amount_text(result.get("amount"), "amount")
    currency = optional_text(result, "currency")
    if currency is not None and currency.upper() != "USD":
        raise RecordError(f"amount is in {currency}, not USD")
    usd = cents.scaleb(-2)  # exact: a power-of-ten shift, never a division
    if usd < 0:
        raise RecordError(f"amount is negative ({cents} cents): a credit, not a cost of usage")
    if usd > MAX_AMOUNT_USD:
        raise RecordError(f"amount is implausibly large: {cents} cents")
    tier = optional_text(result, "service_tier")
    description = optional_text(result, "description")
    return ProviderCostRow(
        day=day,
        provider=PROVIDER,
        amount_usd=usd,
        model=optional_text(result, "model"),
        project_or_workspace_id=optional_text(result, "workspace_id"),
        line_item=description,
        cost_type=optional_text(result, "cost_type"),
        token_type=optional_text(result, "token_type"),
        service_tier=normalize_service_tier(tier) if tier else None,
        context_window=optional_text(result, "context_window"),
    )


class AnthropicAdminClient:
    """Reads Anthropic's messages usage report and cost report for whole UTC days."""

    def __init__(self, http: AdminHttp, *, page_limit: int = MAX_BUCKETS_PER_PAGE) -> None:
        if not 1 <= page_limit <= MAX_BUCKETS_PER_PAGE:
            raise ValueError(f"page_limit must be from 1 to {MAX_BUCKETS_PER_PAGE}")
        self.http = http
        self.page_limit = page_limit

    async def usage(self, since: date, until: date) -> Fetched[ProviderUsageRow]:
        """Messages usage by day, model, API key, workspace, service tier and context window."""
        rows: list[ProviderUsageRow] = []
        refused: list[Refused] = []
        pages = 0
        query = _query(since, until, USAGE_GROUP_BY, self.page_limit)
        async with aclosing(self.http.pages("/v1/organizations/usage_report/messages", query)) as pages_read:
            async for page in pages_read:
                pages += 1
                found, bad = parse_usage_page(page, f"usage page {pages}")
                rows.extend(row for row in found if since <= row.day <= until)
                refused.extend(bad)
        return Fetched(tuple(rows), tuple(refused), pages)

    async def costs(self, since: date, until: date) -> Fetched[ProviderCostRow]:
        """Cost lines by day, workspace and description (which names the model and token type)."""
        rows: list[ProviderCostRow] = []
        refused: list[Refused] = []
        pages = 0
        query = _query(since, until, COST_GROUP_BY, self.page_limit)
        async with aclosing(self.http.pages("/v1/organizations/cost_report", query)) as pages_read:
            async for page in pages_read:
                pages += 1
                found, bad = parse_cost_page(page, f"cost page {pages}")
                rows.extend(row for row in found if since <= row.day <= until)
                refused.extend(bad)
        return Fetched(tuple(rows), tuple(refused), pages)
