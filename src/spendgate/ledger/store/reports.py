"""Reports: from the rollups whenever the dimensions allow (their cost depends on the number
of groups, not of events): the daily ones, the hourly one for a report by hour; from raw
events for trace and tag dimensions. ``--where`` filters and the caller's visibility are
WHERE conditions of the same query on either path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from spendgate.ledger.rollups import plan
from spendgate.ledger.rollups.plan import Rollup
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Dialect
from spendgate.ledger.store.visibility import visible_spend
from spendgate.reports.spec import (
    TAG_PREFIX,
    TIME_DIMENSIONS,
    UNNAMED_TIER,
    ReportError,
    ReportQuery,
    ReportResult,
    ReportRow,
    Where,
    time_span,
)

# What a report row counts, after its cost, in ReportRow order.
_FIGURES = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "unpriced_requests",
    "estimated_requests",
    "error_requests",
    "cache_write_1h_tokens",
)
# The same figures summed from raw events.
_RAW_FIGURES = (
    "count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
    " coalesce(sum(cached_input_tokens), 0), coalesce(sum(cache_write_tokens), 0),"
    " coalesce(sum(reasoning_tokens), 0), count(*) FILTER (WHERE cost_usd IS NULL),"
    " count(*) FILTER (WHERE estimated), count(*) FILTER (WHERE status = 'error'),"
    " coalesce(sum(cache_write_1h_tokens), 0)"
)
_ROLLUP_FIGURES = ", ".join(f"coalesce(sum(r.{f}), 0)" for f in _FIGURES)
# Report dimension -> SQL over usage_events (time dimensions are the dialect's).
_EVENT_COLUMN = {**plan.REPORT_COLUMN, "trace": "trace_id"}


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


class ReportsMixin(StoreBase):
    def report(self, query: ReportQuery, *, source: str = "auto") -> ReportResult:
        """A report from rollups when its dimensions (grouped or filtered by) allow
        (``source="auto"``), else from raw events; ``source="events"`` or ``"rollups"`` forces
        one (tests, benchmarks)."""
        dims = [*query.by, *(dim for dim, _ in query.where)]
        rollup = plan.plan_report(dims) if source != "events" else None
        if rollup is None:
            if source == "rollups":
                raise ReportError(f"no rollup keeps {', '.join(dims)}")
            return self._report_events(query)
        return self._report_rollup(query, rollup)

    def _report_rollup(self, query: ReportQuery, rollup: Rollup) -> ReportResult:
        dialect = self._dialect
        select = [_rollup_dim(dialect, dim) for dim in query.by]
        clauses, params = [], []
        if query.since:
            clauses.append("r.bucket >= ?")
            params.append(dialect.bucket(rollup.grain, day_start(query.since)))
        if query.until:
            clauses.append("r.bucket < ?")  # --until is inclusive: up to the start of the next day
            params.append(dialect.bucket(rollup.grain, day_start(query.until + timedelta(days=1))))
        for dim, values in query.where:
            condition, values_params = _matching(_rollup_dim(dialect, dim), values)
            clauses.append(condition)
            params += values_params
            if dim in TIME_DIMENSIONS:  # and as a bucket range: the rollup's key starts with it
                start, end = time_span(dim, [v for v in values if v is not None])
                clauses.append("r.bucket >= ? AND r.bucket < ?")
                params += [dialect.bucket(rollup.grain, start), dialect.bucket(rollup.grain, end)]
        if query.visible is not None:
            condition, values = visible_spend(query.visible)
            clauses.append(f"r.dims_id IN (SELECT id FROM rollup_dims WHERE {condition})")
            params += values
        money = dialect.rollup_money
        sql = f"SELECT {', '.join([*select, money.sum_sql('r'), _ROLLUP_FIGURES])} FROM {rollup.table} r"
        if any(dim not in TIME_DIMENSIONS for dim in [*query.by, *(dim for dim, _ in query.where)]):
            sql += " JOIN rollup_dims d ON d.id = r.dims_id"
        sql += _where(clauses) + _group_by(select)
        n, width = len(select), len(money.columns)
        rows = self._query(sql, params)
        return _result(query.by, [(row, money.decode(row[n : n + width]), n + width) for row in rows])

    def _report_events(self, query: ReportQuery) -> ReportResult:
        dialect = self._dialect
        select: list[str] = []
        params: list[Any] = []
        for dim in query.by:
            sql, dim_params = _event_dim(dialect, dim)
            select.append(sql)
            params += dim_params
        clauses = []
        if query.since:
            clauses.append("ts >= ?")
            params.append(dialect.ts(day_start(query.since)))
        if query.until:
            clauses.append("ts < ?")  # --until is inclusive: up to the start of the next day
            params.append(dialect.ts(day_start(query.until + timedelta(days=1))))
        where_clauses, where_params = events_where(dialect, query.where)
        clauses += where_clauses
        params += where_params
        if query.visible is not None:
            condition, values = visible_spend(query.visible)
            clauses.append(condition)
            params += values
        columns = ", ".join([*select, dialect.money_sum("cost_usd"), _RAW_FIGURES])
        sql = f"SELECT {columns} FROM usage_events{_where(clauses)}{_group_by(select)}"
        rows = self._query(sql, params)
        # Read after the rows: retention records its horizon before deleting anything.
        plan.check_raw_report(query.since, self.raw_events_pruned_before())
        n = len(select)
        return _result(query.by, [(row, dialect.money_value(row[n]), n + 1) for row in rows])


def events_where(dialect: Dialect, where: Where) -> tuple[list[str], list[Any]]:
    """A ``parse_where`` filter over raw events: its conditions and their parameters (the
    reports' and ``list_events``' one reading of it)."""
    clauses: list[str] = []
    params: list[Any] = []
    for dim, values in where:
        sql, dim_params = _event_dim(dialect, dim)
        condition, condition_params = _matching(sql, values, dim_params)
        clauses.append(condition)
        params += condition_params
        if dim in TIME_DIMENSIONS:  # and as a range of ts: its index finds them
            start, end = time_span(dim, [v for v in values if v is not None])
            clauses.append("ts >= ? AND ts < ?")
            params += [dialect.ts(start), dialect.ts(end)]
    return clauses, params


def _rollup_dim(dialect: Dialect, dim: str) -> str:
    """A report dimension over a rollup row ``r`` and its dimension entry ``d``."""
    if dim in TIME_DIMENSIONS:
        return dialect.bucket_label(dim, "r.bucket")
    return _named_tier(dim, f"d.{plan.REPORT_COLUMN[dim]}")


def _event_dim(dialect: Dialect, dim: str) -> tuple[str, list[Any]]:
    """A report dimension over raw events, and its parameters (a tag's name)."""
    if dim.startswith(TAG_PREFIX):
        sql, param = dialect.json_key("tags", dim[len(TAG_PREFIX) :])
        return sql, [param]
    if dim in TIME_DIMENSIONS:
        return dialect.ts_label(dim, "ts"), []
    return _named_tier(dim, _EVENT_COLUMN[dim]), []


def _named_tier(dim: str, column: str) -> str:
    # A tier nobody named was priced at the standard rate: one group with the named ones.
    return f"coalesce({column}, '{UNNAMED_TIER}')" if dim == "service_tier" else column


def _matching(expr: str, values: Sequence[str | None], expr_params: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """``expr`` (with its own parameters, a tag's name) is one of ``values`` (None: has no
    value); the parameters in placeholder order (``expr`` appears once per part)."""
    present = [v for v in values if v is not None]
    parts: list[str] = []
    params: list[Any] = []
    if present:
        parts.append(f"{expr} IN ({', '.join('?' * len(present))})")
        params += [*expr_params, *present]
    if len(present) < len(values):
        parts.append(f"{expr} IS NULL")
        params += expr_params
    return f"({' OR '.join(parts)})", params


def _where(clauses: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def _group_by(select: Sequence[str]) -> str:
    return " GROUP BY " + ", ".join(str(i + 1) for i in range(len(select))) if select else ""


def _result(by: tuple[str, ...], rows: Sequence[tuple[Any, Decimal, int]]) -> ReportResult:
    """Report rows from (row, its cost, where its figures start): the dimension values come
    first in each row, then the figures in ``_FIGURES`` order."""
    result = ReportResult(by=by)
    for row, cost, first in rows:
        figures = [int(value or 0) for value in row[first : first + len(_FIGURES)]]
        if not figures[0]:
            continue  # no events: an aggregate without GROUP BY still yields one row
        result.rows.append(ReportRow(dims={dim: row[i] for i, dim in enumerate(by)}, cost_usd=cost, **_named(figures)))
    return result.sort()


def _named(figures: Sequence[int]) -> dict[str, int]:
    return dict(zip(_FIGURES, figures, strict=True))
