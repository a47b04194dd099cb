"""Reports: from the daily rollups whenever the dimensions allow (their cost depends on the
number of groups, not of events), from raw events for trace and tag dimensions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from spendgate.ledger.rollups import plan
from spendgate.ledger.rollups.plan import Rollup
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.visibility import visible_spend
from spendgate.reports.spec import TAG_PREFIX, ReportError, ReportQuery, ReportResult, ReportRow

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
# Report dimension -> SQL over usage_events (day and month are the dialect's).
_EVENT_COLUMN = {**plan.REPORT_COLUMN, "trace": "trace_id"}


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


class ReportsMixin(StoreBase):
    def report(self, query: ReportQuery, *, source: str = "auto") -> ReportResult:
        """A report from rollups when its dimensions allow (``source="auto"``), else from
        raw events; ``source="events"`` or ``"rollups"`` forces one (tests, benchmarks)."""
        rollup = plan.plan_report(query.by, [dim for dim, _ in query.where]) if source != "events" else None
        if rollup is None:
            if source == "rollups":
                raise ReportError(f"no rollup keeps {', '.join(query.by)}")
            return self._report_events(query)
        return self._report_rollup(query, rollup)

    def _report_rollup(self, query: ReportQuery, rollup: Rollup) -> ReportResult:
        dialect = self._dialect
        select, joined = [], False
        for dim in query.by:
            if dim == "day":
                select.append(dialect.bucket_day("r.bucket"))
            elif dim == "month":
                select.append(dialect.bucket_month("r.bucket"))
            else:
                select.append(f"d.{plan.REPORT_COLUMN[dim]}")
                joined = True
        money = dialect.rollup_money
        sql = f"SELECT {', '.join([*select, money.sum_sql('r'), _ROLLUP_FIGURES])} FROM {rollup.table} r"
        if joined:
            sql += " JOIN rollup_dims d ON d.id = r.dims_id"
        clauses, params = [], []
        if query.since:
            clauses.append("r.bucket >= ?")
            params.append(dialect.bucket("day", query.since))
        if query.until:
            clauses.append("r.bucket <= ?")
            params.append(dialect.bucket("day", query.until))
        dims_clauses: list[str] = []
        if query.visible is not None:
            condition, values = visible_spend(query.visible)
            dims_clauses.append(condition)
            params += values
        if query.where:
            condition, values = dimension_filter(query.where, dialect, plan.REPORT_COLUMN)
            dims_clauses.append(condition)
            params += values
        if dims_clauses:
            clauses.append(f"r.dims_id IN (SELECT id FROM rollup_dims WHERE {' AND '.join(dims_clauses)})")
        sql += _where(clauses) + _group_by(select)
        n, width = len(select), len(money.columns)
        rows = self._query(sql, params)
        return _result(query.by, [(row, money.decode(row[n : n + width]), n + width) for row in rows])

    def _report_events(self, query: ReportQuery) -> ReportResult:
        dialect = self._dialect
        select: list[str] = []
        params: list[Any] = []
        for dim in query.by:
            if dim.startswith(TAG_PREFIX):
                sql, param = dialect.json_key("tags", dim[len(TAG_PREFIX) :])
                select.append(sql)
                params.append(param)
            elif dim == "day":
                select.append(dialect.ts_day("ts"))
            elif dim == "month":
                select.append(dialect.ts_month("ts"))
            else:
                select.append(_EVENT_COLUMN[dim])
        clauses = []
        if query.since:
            clauses.append("ts >= ?")
            params.append(dialect.ts(day_start(query.since)))
        if query.until:
            clauses.append("ts < ?")  # --until is inclusive: up to the start of the next day
            params.append(dialect.ts(day_start(query.until + timedelta(days=1))))
        if query.visible is not None:
            condition, values = visible_spend(query.visible)
            clauses.append(condition)
            params += values
        if query.where:
            condition, values = dimension_filter(query.where, dialect, _EVENT_COLUMN)
            clauses.append(condition)
            params += values
        columns = ", ".join([*select, dialect.money_sum("cost_usd"), _RAW_FIGURES])
        sql = f"SELECT {columns} FROM usage_events{_where(clauses)}{_group_by(select)}"
        rows = self._query(sql, params)
        # Read after the rows: retention records its horizon before deleting anything.
        plan.check_raw_report(query.since, self.raw_events_pruned_before())
        n = len(select)
        return _result(query.by, [(row, dialect.money_value(row[n]), n + 1) for row in rows])


def dimension_filter(
    where: Sequence[tuple[str, str | None]], dialect: Any, columns: dict[str, str]
) -> tuple[str, list[Any]]:
    """``ReportQuery.where`` as SQL: each dimension equals its value (None: is unset).
    ``columns`` maps plain dimensions to the table's columns; tags read the JSON column."""
    parts: list[str] = []
    params: list[Any] = []
    for dim, value in where:
        if dim.startswith(TAG_PREFIX):
            expr, param = dialect.json_key("tags", dim[len(TAG_PREFIX) :])
            params.append(param)
        else:
            expr = columns[dim]
        if value is None:
            parts.append(f"{expr} IS NULL")
        else:
            parts.append(f"{expr} = ?")
            params.append(value)
    return " AND ".join(parts) or "1 = 1", params


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
