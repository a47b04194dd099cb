"""PostgreSQL rollups (see ``rollups.py`` and migration 0003), retention and the planned
budget spend. A mixin of ``PostgresStore``.

Several replicas add to the same rollup rows (the current hour's, mostly), so every write
takes its row locks in one global order: dimension entries by key, then hourly, daily and lean
rows each by (bucket, dims id). Two batches touching the same rows then queue rather than
deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import tuple_row

from spendgate.budgets.model import Scope
from spendgate.ledger import rollups
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.postgres_budgets import scope_filter
from spendgate.ledger.postgres_events import utc
from spendgate.ledger.rollups import EXACT, MEASURES, ZERO, Rollup
from spendgate.reports.spec import ReportQuery

# meta: epoch microseconds; raw events before it were deleted (postgres_events.MOVE_SQL reads it too)
HORIZON = "raw_events_pruned_before"
_PRUNE_CHUNK = 50_000  # rows deleted per transaction
_DIMS_CACHE_LIMIT = 200_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_CUSTOMER = rollups.COLUMNS.index("customer")
assert rollups.DAILY_LEAN.columns == rollups.COLUMNS[:_CUSTOMER] + rollups.COLUMNS[_CUSTOMER + 1 :]
# Which staging column holds a rollup's dims id (see postgres_events.STAGING_SQL).
_ID_COLUMN = {rollups.HOURLY: "dims_id", rollups.DAILY: "dims_id", rollups.DAILY_LEAN: "lean_dims_id"}
_BUCKET_SQL = {
    "hour": "date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "day": "(ts AT TIME ZONE 'UTC')::date",
}


def _upsert_sql(rollup: Rollup) -> str:
    """Sum the staged events into a rollup: the server groups them, in key order."""
    names = ["bucket", "dims_id", "cost", *MEASURES]
    figures = (
        "coalesce(sum(cost_usd), 0), count(*), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens),"
        " sum(cache_write_1h_tokens), sum(output_tokens), sum(reasoning_tokens),"
        " count(*) FILTER (WHERE cost_usd IS NULL), count(*) FILTER (WHERE estimated),"
        " count(*) FILTER (WHERE status = 'error')"
    )
    updates = ", ".join(f"{n} = r.{n} + excluded.{n}" for n in names[2:])
    return (
        f"INSERT INTO {rollup.table} AS r ({', '.join(names)})"
        f" SELECT {_BUCKET_SQL[rollup.grain]}, {_ID_COLUMN[rollup]}, {figures}"
        " FROM usage_events_staging GROUP BY 1, 2 ORDER BY 1, 2"
        f" ON CONFLICT (bucket, dims_id) DO UPDATE SET {updates}"
    )


_UPSERT = {r: _upsert_sql(r) for r in rollups.ROLLUPS}
# Staged events that were not stored (ids already in the ledger, a repeat within the batch).
_UNSTAGE = (
    "DELETE FROM usage_events_staging s WHERE NOT (s.id = ANY(%s))"
    " OR EXISTS (SELECT 1 FROM usage_events_staging t WHERE t.id = s.id AND t.n < s.n)"
)
_INSERT_DIMS = (
    f"INSERT INTO rollup_dims (dims_key, {', '.join(rollups.COLUMNS)})"
    f" SELECT * FROM unnest(%s::text[]{', %s::text[]' * len(rollups.COLUMNS)}) ORDER BY 1"
    " ON CONFLICT (dims_key) DO NOTHING RETURNING dims_key, id"
)
_FIGURES = (
    "coalesce(sum(r.cost), 0), coalesce(sum(r.requests), 0), coalesce(sum(r.input_tokens), 0),"
    " coalesce(sum(r.output_tokens), 0), coalesce(sum(r.cached_input_tokens), 0),"
    " coalesce(sum(r.cache_write_tokens), 0), coalesce(sum(r.reasoning_tokens), 0),"
    " coalesce(sum(r.unpriced_requests), 0), coalesce(sum(r.estimated_requests), 0),"
    " coalesce(sum(r.error_requests), 0), coalesce(sum(r.cache_write_1h_tokens), 0)"
)


def micros(ts: datetime) -> int:
    return (utc(ts) - _EPOCH) // timedelta(microseconds=1)


def _bucket_param(grain: str, bound: datetime) -> datetime | date:
    return bound if grain == "hour" else bound.date()


class PostgresRollupsMixin:
    if TYPE_CHECKING:
        _pool: Any

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    # dimension values -> rollup_dims.id (a lean rollup's tuples are shorter, as their keys
    # differ); ids are never deleted, so a cached id stays right. Shared by the threads using
    # this store (plain dict reads and updates).
    _dims_cache: dict[tuple[str | None, ...], int]

    # --- writing (inside append_events' transaction) ---------------------------------------
    def _event_dims_ids(
        self, cur: psycopg.Cursor, events: Sequence[UsageEvent]
    ) -> tuple[list[tuple[int, int]], dict[tuple[str | None, ...], int]]:
        """Each event's rollup_dims ids (every column, all but customer), and the ids this
        transaction created (to cache once it commits)."""
        full = [
            (e.provider, e.model, e.project, e.team, e.cost_center, e.feature, e.environment, e.customer, e.key)
            for e in events
        ]
        lean = [dims[:_CUSTOMER] + dims[_CUSTOMER + 1 :] for dims in full]
        ids = self._dims_cache  # this dict object: _dims_committed replaces it, never clears it
        created: dict[tuple[str | None, ...], int] = {}
        missing = {dims for dims in full if dims not in ids} | {dims for dims in lean if dims not in ids}
        if missing:
            created = self._create_dims(cur, missing)
            ids = {**ids, **created}
        return [(ids[f], ids[le]) for f, le in zip(full, lean, strict=True)], created

    def _create_dims(
        self, cur: psycopg.Cursor, missing: set[tuple[str | None, ...]]
    ) -> dict[tuple[str | None, ...], int]:
        """rollup_dims ids of dimension values, inserted where new (in key order: one lock
        order for every writer)."""
        by_key = {rollups.dims_key(dims): dims for dims in missing}
        keys = sorted(by_key)
        found = dict(cur.execute("SELECT dims_key, id FROM rollup_dims WHERE dims_key = ANY(%s)", (keys,)))
        new = [key for key in keys if key not in found]
        if new:
            columns: list[list[str | None]] = [[] for _ in rollups.COLUMNS]
            for key in new:
                dims = by_key[key]
                values = dims if len(dims) == len(rollups.COLUMNS) else (*dims[:_CUSTOMER], None, *dims[_CUSTOMER:])
                for i, value in enumerate(values):
                    columns[i].append(value)
            found.update(cur.execute(_INSERT_DIMS, [new, *columns]))
            lost = [key for key in new if key not in found]  # another writer inserted them meanwhile
            if lost:
                found.update(cur.execute("SELECT dims_key, id FROM rollup_dims WHERE dims_key = ANY(%s)", (lost,)))
        return {by_key[key]: dims_id for key, dims_id in found.items()}

    def _add_staged_to_rollups(self, cur: psycopg.Cursor, stored: list[str] | None) -> None:
        """Sum the staged events into every rollup (``stored``: the ids stored, when not all
        of the batch was new)."""
        if stored is not None:
            cur.execute(_UNSTAGE, (stored,))
        for rollup in rollups.ROLLUPS:
            cur.execute(_UPSERT[rollup])

    def _dims_committed(self, created: dict[tuple[str | None, ...], int]) -> None:
        if len(self._dims_cache) > _DIMS_CACHE_LIMIT:
            self._dims_cache = dict(created)  # a new dict: other threads may be reading the old one
        else:
            self._dims_cache.update(created)

    # --- reading ------------------------------------------------------------------------------
    def raw_events_pruned_before(self) -> datetime | None:
        """The retention horizon: raw events before it were deleted (rollups kept)."""
        rows = self._query("SELECT value FROM meta WHERE name = %s", (HORIZON,))
        return _EPOCH + timedelta(microseconds=rows[0]["value"]) if rows else None

    def _report_rollup_rows(self, query: ReportQuery, rollup: Rollup) -> list[tuple[Any, ...]]:
        select, joined = [], False
        for dim in query.by:
            if dim == "day":
                select.append("to_char(r.bucket::timestamp, 'YYYY-MM-DD')")
            elif dim == "month":
                select.append("to_char(r.bucket::timestamp, 'YYYY-MM')")
            else:
                select.append(f"d.{rollups.REPORT_COLUMN[dim]}")
                joined = True
        sql = f"SELECT {', '.join([*select, _FIGURES])} FROM {rollup.table} r"
        if joined:
            sql += " JOIN rollup_dims d ON d.id = r.dims_id"
        clauses: list[str] = []
        params: list[Any] = []
        if query.since:
            clauses.append("r.bucket >= %s")
            params.append(query.since)
        if query.until:
            clauses.append("r.bucket <= %s")
            params.append(query.until)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if select:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(select)))
        with self._pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            return cur.execute(sql, params).fetchall()

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
        parts: list[str] = []
        params: list[Any] = []
        for piece in pieces:
            if piece.source == "events":
                where, where_params = scope_filter(scope)
                for op, bound in ((">=", piece.start), ("<", piece.end)):
                    if bound is not None:
                        where += f" AND ts {op} %s"
                        where_params.append(utc(bound))
                parts.append(f"SELECT coalesce(sum(cost_usd), 0) FROM usage_events WHERE {where}")
                params += where_params
            else:
                rollup = rollups.choose(piece.source, [column] if column else [])
                assert rollup is not None
                clauses: list[str] = []
                for op, bound in ((">=", piece.start), ("<", piece.end)):
                    if bound is not None:
                        clauses.append(f"r.bucket {op} %s")
                        params.append(_bucket_param(rollup.grain, bound))
                if column:
                    clauses.append(f"r.dims_id IN (SELECT id FROM rollup_dims WHERE {column} = %s)")
                    params.append(scope.value)
                where = " WHERE " + " AND ".join(clauses) if clauses else ""
                parts.append(f"SELECT coalesce(sum(r.cost), 0) FROM {rollup.table} r{where}")
        with self._pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            sums = cur.execute(" UNION ALL ".join(parts), params).fetchall()
        total = ZERO
        for (value,) in sums:
            total = EXACT.add(total, value)
        # Read after the sums: prune records the horizon before deleting anything.
        rollups.check_raw_spend(scope, start, pieces, self.raw_events_pruned_before())
        return total

    # --- retention ------------------------------------------------------------------------------
    def prune(self, before: datetime) -> int:
        """Delete raw events older than ``before``; rollups stay. The horizon is recorded
        first, so from then on a report that would need the deleted events says so, and an
        event older than it arriving late is refused (its id can no longer be checked). The
        delete goes in chunks, each its own transaction, so writers never wait long."""
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET value = greatest(meta.value, excluded.value)",
                (HORIZON, micros(before)),
            )
            deleted = 0
            while True:
                count = conn.execute(
                    "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE ts < %s LIMIT %s)",
                    (utc(before), _PRUNE_CHUNK),
                ).rowcount
                deleted += count
                if count < _PRUNE_CHUNK:
                    return deleted
