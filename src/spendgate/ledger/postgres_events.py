"""How usage events look in PostgreSQL: the columns ``append_events`` writes (and how it
writes them in bulk), the JSON an event is listed as, and the SQL of reports. Shared by
``PostgresStore``; no I/O here."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from spendgate.ledger.events import UsageEvent, format_ts
from spendgate.money import format_usd
from spendgate.reports.spec import ReportQuery

# (column, PostgreSQL type) of what ``append_events`` writes, in ``event_row`` order.
EVENT_COLUMNS = (
    ("id", "text"),
    ("ts", "timestamptz"),
    ("provider", "text"),
    ("model", "text"),
    ("endpoint", "text"),
    ("stream", "boolean"),
    ("status", "text"),
    ("http_status", "integer"),
    ("project", "text"),
    ("team", "text"),
    ("cost_center", "text"),
    ("feature", "text"),
    ("environment", "text"),
    ("customer", "text"),
    ("key_name", "text"),
    ("trace_id", "text"),
    ("tags", "jsonb"),
    ("input_tokens", "bigint"),
    ("cached_input_tokens", "bigint"),
    ("cache_write_tokens", "bigint"),
    ("cache_write_1h_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("reasoning_tokens", "bigint"),
    ("cost_usd", "numeric"),
    ("rates", "jsonb"),
    ("price_source", "text"),
    ("estimated", "boolean"),
    ("latency_ms", "double precision"),
    ("upstream_request_id", "text"),
)
EVENT_NAMES = ", ".join(name for name, _ in EVENT_COLUMNS)
EVENT_TYPES = [kind for _, kind in EVENT_COLUMNS]
# A batch is COPY_SQL'd into a per-session staging table, then moved with one INSERT … SELECT
# that skips ids already stored: measured faster than executemany (even pipelined) for the
# writer's batches of 500-2000 events. ``n`` keeps the batch's order, so of two events with
# one id in a batch the first is kept, as in SQLite.
# Each staged event also carries the rollup_dims ids of its dimension values (all of them,
# and all but customer), so the rollups are summed from the staging table by the server.
STAGING_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS usage_events_staging"
    f" (n bigserial, {', '.join(f'{name} {kind}' for name, kind in EVENT_COLUMNS)},"
    " dims_id bigint, lean_dims_id bigint) ON COMMIT DELETE ROWS"
)
COPY_SQL = f"COPY usage_events_staging ({EVENT_NAMES}, dims_id, lean_dims_id) FROM STDIN (FORMAT BINARY)"
STAGING_TYPES = [*EVENT_TYPES, "bigint", "bigint"]
# Events older than the retention horizon are refused: their ids may have been pruned, so a
# replay could no longer be told from a new event. RETURNING says which events were new: only
# those are added to the rollups.
MOVE_SQL = (
    f"INSERT INTO usage_events ({EVENT_NAMES}) SELECT {EVENT_NAMES} FROM usage_events_staging"
    " WHERE ts >= coalesce((SELECT timestamptz 'epoch' + value * interval '1 microsecond' FROM meta"
    " WHERE name = 'raw_events_pruned_before'), '-infinity')"
    " ORDER BY n ON CONFLICT (id) DO NOTHING RETURNING id"
)

# Report dimension -> SQL expression over usage_events (days and months in UTC).
DIMENSION_SQL = {
    "team": "team",
    "project": "project",
    "feature": "feature",
    "environment": "environment",
    "customer": "customer",
    "model": "model",
    "provider": "provider",
    "key": "key_name",
    "trace": "trace_id",
    "day": "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "month": "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM')",
}
AGGREGATES = (
    "coalesce(sum(cost_usd), 0), count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
    " coalesce(sum(cached_input_tokens), 0), coalesce(sum(cache_write_tokens), 0),"
    " coalesce(sum(reasoning_tokens), 0), count(*) FILTER (WHERE cost_usd IS NULL),"
    " count(*) FILTER (WHERE estimated), count(*) FILTER (WHERE status = 'error'),"
    " coalesce(sum(cache_write_1h_tokens), 0)"
)


def utc(ts: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC, as ``format_ts`` does."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def event_row(event: UsageEvent) -> tuple[Any, ...]:
    return (
        event.id,
        utc(event.ts),
        event.provider,
        event.model,
        event.endpoint,
        event.stream,
        event.status,
        event.http_status,
        event.project,
        event.team,
        event.cost_center,
        event.feature,
        event.environment,
        event.customer,
        event.key,
        event.trace_id,
        Jsonb(event.tags) if event.tags else None,
        event.input_tokens,
        event.cached_input_tokens,
        event.cache_write_tokens,
        event.cache_write_1h_tokens,
        event.output_tokens,
        event.reasoning_tokens,
        event.cost_usd,
        Jsonb(event.rates) if event.rates else None,
        event.price_source,
        event.estimated,
        float(event.latency_ms),
        event.upstream_request_id,
    )


def event_as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event as the contract's JSON object: the same as SQLite's ``event_as_json``."""
    cost = row["cost_usd"]
    return {
        "id": row["id"],
        "ts": format_ts(row["ts"]),
        "provider": row["provider"],
        "model": row["model"],
        "endpoint": row["endpoint"],
        "stream": row["stream"],
        "project": row["project"] or "unallocated",
        "team": row["team"],
        "cost_center": row["cost_center"],
        "feature": row["feature"],
        "environment": row["environment"],
        "customer": row["customer"],
        "key": row["key_name"],
        "trace_id": row["trace_id"],
        "tags": row["tags"] or {},
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cached_input_tokens": row["cached_input_tokens"],
        "cache_write_tokens": row["cache_write_tokens"],
        "cache_write_1h_tokens": row["cache_write_1h_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
        "cost_usd": None if cost is None else format_usd(cost),
        "priced": cost is not None,
        "rates": row["rates"] or None,
        "price_source": row["price_source"],
        "status": row["status"],
        "http_status": row["http_status"],
        "estimated": row["estimated"],
        "latency_ms": row["latency_ms"],
        "upstream_request_id": row["upstream_request_id"],
    }


def time_filter(query: ReportQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.since:
        clauses.append("ts >= %s")
        params.append(day_start(query.since))
    if query.until:
        clauses.append("ts < %s")  # --until is inclusive: up to the start of the next day
        params.append(day_start(query.until + timedelta(days=1)))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
