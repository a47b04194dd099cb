"""OpenAI's organization usage and costs reports.

Endpoints (under the OpenAI base URL, ``/v1`` included), admin key as a bearer token:

- ``GET /organization/usage/completions`` and ``/organization/usage/embeddings``: pages of
  daily buckets ``{"object": "bucket", "start_time", "end_time", "results": [...]}``; each result
  counts ``input_tokens`` (cached included), ``input_cached_tokens``, ``output_tokens`` and
  ``num_model_requests`` for one group of ``group_by[]``;
- ``GET /organization/costs``: the same buckets of ``{"amount": {"value", "currency"},
  "line_item", "project_id"}``; costs cannot be grouped by model.

Query: ``start_time`` / ``end_time`` (Unix seconds, end exclusive), ``bucket_width=1d``,
``group_by[]``, ``limit`` (buckets per page), ``page`` (the previous ``next_page``).
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
    "COMPLETIONS_GROUP_BY",
    "COSTS_GROUP_BY",
    "EMBEDDINGS_GROUP_BY",
    "KEY_VARIABLE",
    "OpenAIAdminClient",
    "parse_costs_page",
    "parse_usage_page",
)

PROVIDER = "openai"
KEY_VARIABLE = "OPENAI_ADMIN_KEY"
USAGE_ENDPOINTS = ("completions", "embeddings")
COMPLETIONS_GROUP_BY = ("model", "project_id", "api_key_id", "service_tier", "batch")
EMBEDDINGS_GROUP_BY = ("model", "project_id", "api_key_id")
COSTS_GROUP_BY = ("project_id", "line_item")
MAX_BUCKETS_PER_PAGE = 31  # the most a page of daily buckets may hold (usage: 31, costs: 180)
BATCH = "batch"


def time_range(since: date, until: date) -> tuple[int, int]:
    """Unix seconds from the start of ``since`` to the end of ``until`` (inclusive), UTC."""
    if until < since:
        raise ValueError("until is before since")
    start = datetime.combine(since, time(), UTC)
    end = datetime.combine(until + timedelta(days=1), time(), UTC)
    return int(start.timestamp()), int(end.timestamp())


def _query(since: date, until: date, group_by: Sequence[str], limit: int) -> list[tuple[str, str]]:
    start, end = time_range(since, until)
    query = [("start_time", str(start)), ("end_time", str(end)), ("bucket_width", "1d"), ("limit", str(limit))]
    return query + [("group_by[]", field) for field in group_by]


def _buckets(page: dict[str, Any], where: str) -> list[tuple[str, date | None, list[Any], str | None]]:
    """(where, day, results, why refused) for each bucket of a page."""
    data = page.get("data")
    if not isinstance(data, list):
        return [(where, None, [], "the page has no data list")]
    buckets = []
    for index, bucket in enumerate(data):
        at = f"{where} bucket {index}"
        if not isinstance(bucket, dict):
            buckets.append((at, None, [], "the bucket is not an object"))
            continue
        start = bucket.get("start_time")
        results = bucket.get("results")
        if results is None:  # some documented examples spell it "result"
            results = bucket.get("result")
        if isinstance(start, bool) or not isinstance(start, int):
            buckets.append((at, None, [], f"start_time is not Unix seconds: {start!r:.40}"))
            continue
        try:
            day = utc_day(datetime.fromtimestamp(start, UTC))
        except (RecordError, OverflowError, OSError, ValueError) as error:
            buckets.append((at, None, [], str(error)))
            continue
        if not isinstance(results, list):
            buckets.append((at, None, [], "results is not a list"))
            continue
        buckets.append((f"{where} bucket {day.isoformat()}", day, results, None))
    return buckets


def parse_usage_page(
    page: dict[str, Any], endpoint: str, where: str = "page"
) -> tuple[list[ProviderUsageRow], list[Refused]]:
    """The usage rows of one page of ``/organization/usage/{endpoint}``, and what was refused."""
    rows: list[ProviderUsageRow] = []
    refused: list[Refused] = []
    for at, day, results, problem in _buckets(page, where):
        if problem is not None or day is None:
            refused.append(Refused(at, problem or "no day"))
            continue
        for index, result in enumerate(results):
            try:
                rows.append(_usage_row(day, endpoint, result))
            except RecordError as error:
                refused.append(Refused(f"{at} result {index}", str(error)))
    return rows, refused


def _usage_row(day: date, endpoint: str, result: Any) -> ProviderUsageRow:
    if not isinstance(result, dict):
        raise RecordError("the result is not an object")
    input_tokens = count(result, "input_tokens")
    cached = count(result, "input_cached_tokens")
    # Newer answers also count cache writes (part of input_tokens); older ones lack the field.
    cache_writes = count(result, "input_cache_write_tokens")
    if cached + cache_writes > input_tokens:
        raise RecordError(
            f"cached and cache-write tokens ({cached} + {cache_writes}) exceed input_tokens ({input_tokens})"
        )
    batch = result.get("batch")
    if batch is not None and not isinstance(batch, bool):
        raise RecordError(f"batch is not a boolean: {batch!r:.40}")
    tier_text = optional_text(result, "service_tier")
    tier = BATCH if batch else normalize_service_tier(tier_text) if tier_text else None
    return ProviderUsageRow(
        day=day,
        provider=PROVIDER,
        model=optional_text(result, "model"),
        api_key_id=optional_text(result, "api_key_id"),
        project_or_workspace_id=optional_text(result, "project_id"),
        service_tier=tier,
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=cache_writes,
        cache_write_1h_tokens=0,
        output_tokens=count(result, "output_tokens"),
        requests=count(result, "num_model_requests"),
        endpoint=endpoint,
    )


def parse_costs_page(page: dict[str, Any], where: str = "page") -> tuple[list[ProviderCostRow], list[Refused]]:
    """The cost lines of one page of ``/organization/costs``, and what was refused."""
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
    amount = result.get("amount")
    if not isinstance(amount, dict):
        raise RecordError("amount is not an object")
    value = amount_text(amount.get("value"), "amount.value")
    currency = optional_text(amount, "currency")
    if currency is not None and currency.lower() != "usd":
        raise RecordError(f"amount is in {currency}, not USD")
    if value < 0:
        raise RecordError(f"amount.value is negative ({value}): a credit, not a cost of usage")
    if value > MAX_AMOUNT_USD:
        raise RecordError(f"amount.value is implausibly large: {value}")
    return ProviderCostRow(
        day=day,
        provider=PROVIDER,
        amount_usd=value,
        project_or_workspace_id=optional_text(result, "project_id"),
        api_key_id=optional_text(result, "api_key_id"),
        line_item=optional_text(result, "line_item"),
    )


class OpenAIAdminClient:
    """Reads OpenAI's usage and costs reports for whole UTC days."""

    def __init__(self, http: AdminHttp, *, page_limit: int = MAX_BUCKETS_PER_PAGE) -> None:
        if not 1 <= page_limit <= MAX_BUCKETS_PER_PAGE:
            raise ValueError(f"page_limit must be from 1 to {MAX_BUCKETS_PER_PAGE}")
        self.http = http
        self.page_limit = page_limit

    async def usage(self, since: date, until: date) -> Fetched[ProviderUsageRow]:
        """Completions and embeddings usage by day, model, project, API key and service tier."""
        rows: list[ProviderUsageRow] = []
        refused: list[Refused] = []
        pages = 0
        for endpoint in USAGE_ENDPOINTS:
            group_by = COMPLETIONS_GROUP_BY if endpoint == "completions" else EMBEDDINGS_GROUP_BY
            query = _query(since, until, group_by, self.page_limit)
            async with aclosing(self.http.pages(f"/organization/usage/{endpoint}", query)) as pages_read:
                async for page in pages_read:
                    pages += 1
                    found, bad = parse_usage_page(page, endpoint, f"{endpoint} page {pages}")
                    rows.extend(row for row in found if since <= row.day <= until)
                    refused.extend(bad)
        return Fetched(tuple(rows), tuple(refused), pages)

    async def costs(self, since: date, until: date) -> Fetched[ProviderCostRow]:
        """Cost lines by day, project and line item."""
        rows: list[ProviderCostRow] = []
        refused: list[Refused] = []
        pages = 0
        query = _query(since, until, COSTS_GROUP_BY, self.page_limit)
        async with aclosing(self.http.pages("/organization/costs", query)) as pages_read:
            async for page in pages_read:
                pages += 1
                found, bad = parse_costs_page(page, f"costs page {pages}")
                rows.extend(row for row in found if since <= row.day <= until)
                refused.extend(bad)
        return Fetched(tuple(rows), tuple(refused), pages)
