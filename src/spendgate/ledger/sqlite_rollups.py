"""SQLite rollups (see ``rollups.py``), retention and the planned budget spend. A mixin of
``SQLiteStore``: it uses its connection and lock, and runs inside its transactions.

Money in the rollups is exact without a Python call per row read: a rollup's cost is kept as
whole nano-dollars (``cost_nanos``) plus atto-dollars below a nano-dollar (``cost_attos``,
0 <= x < 10^9), both SQLite integers summed natively; only a cost with more than 18 decimal
places (no real price has one) goes to ``cost_rest``, an exact decimal text that is normally
NULL. An integer overflow (over 9.2 billion dollars in one bucket) fails the CHECK rather
than turning into a float.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spendgate.budgets.model import Scope
from spendgate.ledger import rollups
from spendgate.ledger.events import UsageEvent, format_ts
from spendgate.ledger.rollups import EXACT, MEASURES, ZERO, Groups, Rollup
from spendgate.ledger.sqlite_budgets import scope_filter
from spendgate.reports.spec import ReportQuery

_ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    bucket TEXT NOT NULL,  -- UTC {grain}: {example}
    dims_id INTEGER NOT NULL,  -- rollup_dims.id
    cost_nanos INTEGER NOT NULL CHECK (typeof(cost_nanos) = 'integer'),
    cost_attos INTEGER NOT NULL CHECK (typeof(cost_attos) = 'integer'),
    cost_rest TEXT,
    {measures},
    PRIMARY KEY (bucket, dims_id)
) WITHOUT ROWID;
"""
ROLLUPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup_dims (
    id INTEGER PRIMARY KEY,
    dims_key TEXT NOT NULL UNIQUE,  -- rollups.dims_key of the values a rollup keeps
    provider TEXT, model TEXT, project TEXT, team TEXT, cost_center TEXT,
    feature TEXT, environment TEXT, customer TEXT, key_name TEXT
);
-- A budget's spend selects the entries of its scope (team:X…) before summing rollup rows.
-- Entries are added only for new combinations of values, so these cost ingest nothing.
CREATE INDEX IF NOT EXISTS rollup_dims_team ON rollup_dims (team);
CREATE INDEX IF NOT EXISTS rollup_dims_project ON rollup_dims (project);
CREATE INDEX IF NOT EXISTS rollup_dims_key_name ON rollup_dims (key_name);
CREATE INDEX IF NOT EXISTS rollup_dims_customer ON rollup_dims (customer);
CREATE INDEX IF NOT EXISTS rollup_dims_feature ON rollup_dims (feature);
""" + "".join(
    _ROLLUP_TABLE.format(
        table=r.table,
        grain=r.grain,
        example="2025-03-10T14" if r.grain == "hour" else "2025-03-10",
        measures=", ".join(f"{m} INTEGER NOT NULL" for m in MEASURES),
    )
    for r in rollups.ROLLUPS
)

_NANO = 10**9
_HORIZON = "raw_events_pruned_before"  # meta: epoch microseconds; raw events before it were deleted
_PRUNE_CHUNK = 20_000  # rows deleted per transaction, so the gateway's writer never waits long
_DIMS_CACHE_LIMIT = 200_000


def _upsert_sql(rollup: Rollup) -> str:
    names = ["bucket", "dims_id", "cost_nanos", "cost_attos", "cost_rest", *MEASURES]
    updates = [
        f"cost_nanos = cost_nanos + excluded.cost_nanos + (cost_attos + excluded.cost_attos) / {_NANO}",
        f"cost_attos = (cost_attos + excluded.cost_attos) % {_NANO}",
        "cost_rest = CASE WHEN excluded.cost_rest IS NULL THEN cost_rest WHEN cost_rest IS NULL"
        " THEN excluded.cost_rest ELSE decimal_add(cost_rest, excluded.cost_rest) END",
        *(f"{m} = {m} + excluded.{m}" for m in MEASURES),
    ]
    return (
        f"INSERT INTO {rollup.table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
        f" ON CONFLICT (bucket, dims_id) DO UPDATE SET {', '.join(updates)}"
    )


_UPSERT = {r: _upsert_sql(r) for r in rollups.ROLLUPS}
# Report figures in ReportRow order, over a rollup aliased r.
_COST_SQL = "SUM(r.cost_nanos), SUM(r.cost_attos), decimal_sum(r.cost_rest) FILTER (WHERE r.cost_rest IS NOT NULL)"
REPORT_FIGURES_SQL = (
    f"{_COST_SQL}, SUM(r.requests), SUM(r.input_tokens), SUM(r.output_tokens), SUM(r.cached_input_tokens),"
    " SUM(r.cache_write_tokens), SUM(r.reasoning_tokens), SUM(r.unpriced_requests), SUM(r.estimated_requests),"
    " SUM(r.error_requests), SUM(r.cache_write_1h_tokens)"
)


def split_cost(cost: Decimal) -> tuple[int, int, str | None]:
    """(nanos, attos, rest): exact, whatever the cost."""
    if cost.is_finite():
        scaled = cost.scaleb(18, context=EXACT)
        units = int(scaled)
        if units == scaled:
            nanos, attos = divmod(units, _NANO)
            if -(2**63) <= nanos < 2**63:
                return nanos, attos, None
    return 0, 0, str(cost)


def join_cost(nanos: int | None, attos: int | None, rest: str | None) -> Decimal:
    total = Decimal((nanos or 0) * _NANO + (attos or 0)).scaleb(-18, context=EXACT)
    return EXACT.add(total, Decimal(rest)) if rest is not None else total


def decimal_add(a: str, b: str) -> str:
    return str(EXACT.add(Decimal(a), Decimal(b)))


def hour_text(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H")


def _micros(ts: datetime) -> int:
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _from_micros(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


class SQLiteRollupsMixin:
    if TYPE_CHECKING:
        _conn: sqlite3.Connection
        _lock: Any

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

    # dimension values -> rollup_dims.id (tuples of different rollups differ in length, as
    # their dims_keys do); ids are never deleted, so a cached id stays right.
    _dims_cache: dict[tuple[str | None, ...], int]
    _dims_pending: dict[tuple[str | None, ...], int]

    def _setup_rollups(self) -> None:
        self._dims_cache, self._dims_pending = {}, {}
        self._conn.create_function("decimal_add", 2, decimal_add, deterministic=True)

    # --- writing (inside append_events' transaction) ---------------------------------------
    def _horizon_text(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (_HORIZON,)).fetchone()
        return None if row is None else format_ts(_from_micros(row[0]))

    def _add_to_rollups(self, events: Sequence[UsageEvent], hours: Sequence[str]) -> None:
        """Add stored events to the rollups (``hours``: each one's UTC hour, the first 13
        characters of its stored ts)."""
        self._write_groups(rollups.aggregate(events, hours))

    def _write_groups(self, groups: dict[Rollup, Groups]) -> None:
        for rollup, rows in groups.items():
            params = []
            for (bucket, dims), totals in rows.items():
                dims_id = self._dims_cache.get(dims) or self._dims_id(rollup, dims)
                params.append((bucket, dims_id, *split_cost(totals[0]), *totals[1:]))
            params.sort()  # b-tree order, fewer pages touched ((bucket, dims id) is unique)
            self._conn.executemany(_UPSERT[rollup], params)

    def _dims_id(self, rollup: Rollup, dims: tuple[str | None, ...]) -> int:
        found = self._dims_pending.get(dims)
        if found is None:
            key = rollups.dims_key(dims)
            row = self._conn.execute("SELECT id FROM rollup_dims WHERE dims_key = ?", (key,)).fetchone()
            if row is None:
                names = ", ".join(rollup.columns)
                found = self._conn.execute(
                    f"INSERT INTO rollup_dims (dims_key, {names}) VALUES (?{', ?' * len(dims)})", (key, *dims)
                ).lastrowid
            else:
                found = row[0]
            self._dims_pending[dims] = found
        return found  # type: ignore[return-value]

    def _rollups_committed(self) -> None:
        if len(self._dims_cache) + len(self._dims_pending) > _DIMS_CACHE_LIMIT:
            self._dims_cache = {}
        self._dims_cache.update(self._dims_pending)
        self._dims_pending.clear()

    def _rollups_rolled_back(self) -> None:
        self._dims_pending.clear()  # those rows were never committed

    def _backfill_rollups(self) -> None:
        """Rollups of the events stored before rollups existed (schema version 1 -> 2)."""
        columns = ", ".join(rollups.COLUMNS)
        cursor = self._conn.execute(
            f"SELECT substr(ts, 1, 13), {columns}, decimal_sum(cost_usd), COUNT(*), SUM(input_tokens),"
            " SUM(cached_input_tokens), SUM(cache_write_tokens), SUM(cache_write_1h_tokens), SUM(output_tokens),"
            " SUM(reasoning_tokens), SUM(cost_usd IS NULL), SUM(estimated), SUM(status = 'error')"
            f" FROM usage_events GROUP BY 1, {', '.join(rollups.COLUMNS)}"
        )
        hourly: Groups = {}
        n = len(rollups.COLUMNS)
        for row in cursor:
            cost = Decimal(row[n + 1]) if row[n + 1] is not None else ZERO
            hourly[(row[0], tuple(row[1 : n + 1]))] = [cost, *row[n + 2 :]]
        if hourly:
            self._write_groups({r: rollups.regroup(hourly, r) for r in rollups.ROLLUPS})

    # --- reading ------------------------------------------------------------------------------
    def raw_events_pruned_before(self) -> datetime | None:
        """The retention horizon: raw events before it were deleted (rollups kept)."""
        rows = self._query("SELECT value FROM meta WHERE name = ?", (_HORIZON,))
        return _from_micros(rows[0][0]) if rows else None

    def _rollup_report_sql(self, query: ReportQuery, rollup: Rollup) -> tuple[str, list[Any]]:
        select, joined = [], False
        for dim in query.by:
            if dim == "day":
                select.append("r.bucket")
            elif dim == "month":
                select.append("substr(r.bucket, 1, 7)")
            else:
                select.append(f"d.{rollups.REPORT_COLUMN[dim]}")
                joined = True
        sql = f"SELECT {', '.join([*select, REPORT_FIGURES_SQL])} FROM {rollup.table} r"
        if joined:
            sql += " JOIN rollup_dims d ON d.id = r.dims_id"
        clauses, params = [], []
        if query.since:
            clauses.append("r.bucket >= ?")
            params.append(query.since.isoformat())
        if query.until:
            clauses.append("r.bucket <= ?")
            params.append(query.until.isoformat())
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if select:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(select)))
        return sql, params

    def _planned_spend(self, scope: Scope, start: datetime | None, end: datetime | None) -> Decimal:
        """Whole days from daily rollups, whole hours from hourly ones, the partial hours at
        the edges (and tag scopes) from raw events: one statement, so one snapshot."""
        column = rollups.SCOPE_COLUMN.get(scope.kind)
        if scope.kind == "tag":
            pieces = [rollups.Piece("events", start, end)] if start is None or end is None or start < end else []
        else:
            pieces = rollups.spend_pieces(start, end)
        if not pieces:
            return ZERO
        parts, params = [], []
        for piece in pieces:
            if piece.source == "events":
                where, where_params = scope_filter(scope)
                for op, bound in ((">=", piece.start), ("<", piece.end)):
                    if bound is not None:
                        where += f" AND ts {op} ?"
                        where_params.append(format_ts(bound))
                parts.append(f"SELECT 0, 0, decimal_sum(cost_usd) FROM usage_events WHERE {where}")
                params += where_params
            else:
                rollup = rollups.choose(piece.source, [column] if column else [])
                assert rollup is not None
                text = hour_text if piece.source == "hour" else (lambda ts: ts.date().isoformat())
                clauses: list[str] = []
                for op, bound in ((">=", piece.start), ("<", piece.end)):
                    if bound is not None:
                        clauses.append(f"r.bucket {op} ?")
                        params.append(text(bound))
                if column:
                    clauses.append(f"r.dims_id IN (SELECT id FROM rollup_dims WHERE {column} = ?)")
                    params.append(scope.value)
                where = " WHERE " + " AND ".join(clauses) if clauses else ""
                parts.append(f"SELECT {_COST_SQL} FROM {rollup.table} r{where}")
        total = ZERO
        for nanos, attos, rest in self._query(" UNION ALL ".join(parts), params):
            total = EXACT.add(total, join_cost(nanos, attos, rest))
        # The horizon is read after the sums: prune records it before deleting anything, so
        # if it does not cover the raw pieces now, nothing they summed had been deleted.
        rollups.check_raw_spend(scope, start, pieces, self.raw_events_pruned_before())
        return total

    # --- retention ------------------------------------------------------------------------------
    def prune(self, before: datetime) -> int:
        """Delete raw events older than ``before``; rollups stay. The horizon is recorded
        first, so from then on a report that would need the deleted events says so, and an
        event older than it arriving late is refused (its id can no longer be checked)."""
        cutoff = format_ts(before)
        with self._lock, self._immediate():
            self._conn.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                (_HORIZON, _micros(before)),
            )
        deleted = 0
        while True:
            with self._lock, self._immediate():
                count = self._conn.execute(
                    "DELETE FROM usage_events WHERE seq IN (SELECT seq FROM usage_events WHERE ts < ? LIMIT ?)",
                    (cutoff, _PRUNE_CHUNK),
                ).rowcount
            deleted += count
            if count < _PRUNE_CHUNK:
                return deleted

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
