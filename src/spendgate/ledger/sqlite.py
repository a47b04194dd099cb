"""The embedded SQLite backend: zero set-up, WAL so readers (CLI, reports) never block the
gateway's writer, one connection guarded by a lock (the gateway writes from a single
writer thread; see ``ledger/writer.py``).

Money is stored as exact decimal text and summed with a Decimal aggregate: SQLite has no
exact decimal type and integer sub-cent units would either round some prices or overflow.
Reports and budget spend over long ranges are answered from rollups (``sqlite_rollups.py``),
kept in the same transaction as the events.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from spendgate.attribution.model import Directory, GatewayKey, Project, Team
from spendgate.ledger import rollups
from spendgate.ledger.events import UsageEvent, format_ts
from spendgate.ledger.rollups import EXACT
from spendgate.ledger.sqlite_alerts import ALERTS_SCHEMA, SQLiteAlertsMixin
from spendgate.ledger.sqlite_budgets import BUDGETS_SCHEMA, SQLiteBudgetsMixin
from spendgate.ledger.sqlite_rollups import ROLLUPS_SCHEMA, SQLiteRollupsMixin, join_cost
from spendgate.ledger.store import StoreError
from spendgate.money import format_usd
from spendgate.reports.spec import TAG_PREFIX, ReportError, ReportQuery, ReportResult, ReportRow

# 1: the first schema; 2: rollups (created, and filled from the events already stored, on open).
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS teams (
    name TEXT PRIMARY KEY,
    cost_center TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    team TEXT NOT NULL REFERENCES teams(name),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    environment TEXT NOT NULL,
    project TEXT REFERENCES projects(name),
    locked INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS usage_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    project TEXT,
    team TEXT,
    cost_center TEXT,
    feature TEXT,
    environment TEXT,
    customer TEXT,
    key_name TEXT,
    trace_id TEXT,
    tags TEXT,
    input_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT,
    rates TEXT,
    price_source TEXT,
    estimated INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    upstream_request_id TEXT
);
-- Raw events are read by time range only: reports by trace or tag, the partial hours at the
-- edges of budget windows, the newest events, and retention's deletes. Everything else is
-- answered from rollups, so no index per budget scope is needed (see bench_ledger_scale).
CREATE INDEX IF NOT EXISTS usage_events_ts ON usage_events (ts);
"""

EVENT_COLUMNS = (
    "id",
    "ts",
    "provider",
    "model",
    "endpoint",
    "stream",
    "status",
    "http_status",
    "project",
    "team",
    "cost_center",
    "feature",
    "environment",
    "customer",
    "key_name",
    "trace_id",
    "tags",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "rates",
    "price_source",
    "estimated",
    "latency_ms",
    "upstream_request_id",
)
_INSERT_EVENT = (
    f"INSERT OR IGNORE INTO usage_events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)

# Report dimension -> SQL expression over usage_events.
_DIMENSION_SQL = {
    "team": "team",
    "project": "project",
    "feature": "feature",
    "environment": "environment",
    "customer": "customer",
    "model": "model",
    "provider": "provider",
    "key": "key_name",
    "trace": "trace_id",
    "day": "substr(ts, 1, 10)",
    "month": "substr(ts, 1, 7)",
}


class DecimalSum:
    """SQLite aggregate summing decimal text exactly (at any size: no 28-digit rounding);
    NULL (unpriced) rows add nothing."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = EXACT.add(self.total, Decimal(value))

    def finalize(self) -> str:
        return str(self.total)


def _now() -> str:
    return format_ts(datetime.now(UTC))


def event_row(event: UsageEvent) -> tuple[Any, ...]:
    return (
        event.id,
        format_ts(event.ts),
        event.provider,
        event.model,
        event.endpoint,
        int(event.stream),
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
        orjson.dumps(event.tags).decode() if event.tags else None,
        event.input_tokens,
        event.cached_input_tokens,
        event.cache_write_tokens,
        event.cache_write_1h_tokens,
        event.output_tokens,
        event.reasoning_tokens,
        None if event.cost_usd is None else str(event.cost_usd),
        orjson.dumps(event.rates).decode() if event.rates else None,
        event.price_source,
        int(event.estimated),
        event.latency_ms,
        event.upstream_request_id,
    )


def event_as_json(row: sqlite3.Row) -> dict[str, Any]:
    """A stored event as the contract's JSON object (``spendgate events --format json``)."""
    cost = row["cost_usd"]
    return {
        "id": row["id"],
        "ts": row["ts"],
        "provider": row["provider"],
        "model": row["model"],
        "endpoint": row["endpoint"],
        "stream": bool(row["stream"]),
        "project": row["project"] or "unallocated",
        "team": row["team"],
        "cost_center": row["cost_center"],
        "feature": row["feature"],
        "environment": row["environment"],
        "customer": row["customer"],
        "key": row["key_name"],
        "trace_id": row["trace_id"],
        "tags": orjson.loads(row["tags"]) if row["tags"] else {},
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cached_input_tokens": row["cached_input_tokens"],
        "cache_write_tokens": row["cache_write_tokens"],
        "cache_write_1h_tokens": row["cache_write_1h_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
        "cost_usd": None if cost is None else format_usd(Decimal(cost)),
        "priced": cost is not None,
        "rates": orjson.loads(row["rates"]) if row["rates"] else None,
        "price_source": row["price_source"],
        "status": row["status"],
        "http_status": row["http_status"],
        "estimated": bool(row["estimated"]),
        "latency_ms": row["latency_ms"],
        "upstream_request_id": row["upstream_request_id"],
    }


class SQLiteStore(SQLiteBudgetsMixin, SQLiteAlertsMixin, SQLiteRollupsMixin):
    # Feature areas add their tables here (see the mixins this class is built from).
    EXTRA_SCHEMAS: tuple[str, ...] = (BUDGETS_SCHEMA, ALERTS_SCHEMA, ROLLUPS_SCHEMA)

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.create_aggregate("decimal_sum", 1, DecimalSum)
        self._setup_rollups()
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a process crash; only a power loss may lose the last
        # commits (issue 4's local spool is what makes events durable before the database).
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        # sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:
        path = url.split(":", 1)[1]
        path = path[3:] if path.startswith("///") else path.lstrip("/")
        if not path:
            raise StoreError(f"no file in database URL {url!r}; use sqlite:///path.db")
        return cls(path)

    def _migrate(self) -> None:
        with self._lock:
            self._conn.executescript(SCHEMA)
            for extra in self.EXTRA_SCHEMAS:
                self._conn.executescript(extra)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?), ('config_version', 0)",
                (SCHEMA_VERSION,),
            )
            with self._immediate():  # re-read inside: another process may be upgrading too
                version = self._conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
                if version < 2:
                    self._backfill_rollups()
                    self._conn.execute("UPDATE meta SET value = 2 WHERE name = 'schema_version'")
            self._rollups_committed()

    def _write(self, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Run management statements in one transaction and bump the config version, so
        every gateway sharing this database notices."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    self._conn.execute(sql, params)
                self._conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'config_version'")
                self._conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(str(exc)) from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # --- teams, projects, keys -------------------------------------------------------
    def create_team(self, name: str, cost_center: str | None = None) -> Team:
        if self._query("SELECT 1 FROM teams WHERE name = ?", (name,)):
            raise StoreError(f"team {name!r} already exists")
        self._write(
            [
                (
                    "INSERT INTO teams (name, cost_center, created_at) VALUES (?, ?, ?)",
                    (name, cost_center, _now()),
                )
            ]
        )
        return Team(name, cost_center)

    def list_teams(self) -> list[Team]:
        return [Team(r["name"], r["cost_center"]) for r in self._query("SELECT * FROM teams ORDER BY name")]

    def create_project(self, name: str, team: str) -> Project:
        if not self._query("SELECT 1 FROM teams WHERE name = ?", (team,)):
            raise StoreError(f"unknown team {team!r}; create it first with `spendgate teams create {team}`")
        if self._query("SELECT 1 FROM projects WHERE name = ?", (name,)):
            raise StoreError(f"project {name!r} already exists")
        self._write([("INSERT INTO projects (name, team, created_at) VALUES (?, ?, ?)", (name, team, _now()))])
        return Project(name, team)

    def list_projects(self) -> list[Project]:
        return [Project(r["name"], r["team"]) for r in self._query("SELECT * FROM projects ORDER BY name")]

    def create_key(self, key: GatewayKey) -> GatewayKey:
        if key.project and not self._query("SELECT 1 FROM projects WHERE name = ?", (key.project,)):
            raise StoreError(f"unknown project {key.project!r}")
        if self._query("SELECT 1 FROM gateway_keys WHERE name = ?", (key.name,)):
            raise StoreError(f"key {key.name!r} already exists")
        self._write(
            [
                (
                    "INSERT INTO gateway_keys"
                    " (name, key_hash, key_prefix, environment, project, locked, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.name,
                        key.key_hash,
                        key.key_prefix,
                        key.environment,
                        key.project,
                        int(key.locked),
                        _now(),
                    ),
                )
            ]
        )
        return key

    def list_keys(self) -> list[GatewayKey]:
        return [_key(r) for r in self._query("SELECT * FROM gateway_keys ORDER BY name")]

    def revoke_key(self, name: str) -> GatewayKey:
        rows = self._query("SELECT * FROM gateway_keys WHERE name = ?", (name,))
        if not rows:
            raise StoreError(f"unknown key {name!r}")
        if rows[0]["revoked_at"] is None:
            self._write([("UPDATE gateway_keys SET revoked_at = ? WHERE name = ?", (_now(), name))])
        return _key(self._query("SELECT * FROM gateway_keys WHERE name = ?", (name,))[0])

    def config_version(self) -> int:
        return int(self._query("SELECT value FROM meta WHERE name = 'config_version'")[0][0])

    def load_directory(self) -> Directory:
        with self._lock:
            # One read transaction, so the snapshot is consistent.
            self._conn.execute("BEGIN")
            try:
                version = self._conn.execute("SELECT value FROM meta WHERE name = 'config_version'").fetchone()[0]
                teams = [Team(r["name"], r["cost_center"]) for r in self._conn.execute("SELECT * FROM teams")]
                projects = [Project(r["name"], r["team"]) for r in self._conn.execute("SELECT * FROM projects")]
                keys = [_key(r) for r in self._conn.execute("SELECT * FROM gateway_keys")]
            finally:
                self._conn.execute("COMMIT")
        return Directory.build(teams, projects, keys, version=int(version))

    # --- the ledger ------------------------------------------------------------------
    def append_events(self, events: Sequence[UsageEvent]) -> int:
        """Store the new events and add them to the rollups, in one transaction. Only events
        actually stored are added (a replayed id is not counted twice); an event older than
        the retention horizon is refused, since whether it is new can no longer be told."""
        if not events:
            return 0
        rows = [event_row(e) for e in events]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                horizon = self._horizon_text()
                if horizon is not None and any(row[1] < horizon for row in rows):
                    kept = [i for i, row in enumerate(rows) if row[1] >= horizon]
                    events, rows = [events[i] for i in kept], [rows[i] for i in kept]
                last = self._conn.execute("SELECT max(seq) FROM usage_events").fetchone()[0] or 0
                before = self._conn.total_changes
                self._conn.executemany(_INSERT_EVENT, rows)
                added = self._conn.total_changes - before
                if added:
                    if added < len(events):
                        stored = self._stored_since(events, last)
                        rows = [rows[i] for i in stored]
                        events = [events[i] for i in stored]
                    self._add_to_rollups(events, [row[1][:13] for row in rows])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._rollups_rolled_back()
                raise
            self._rollups_committed()
            return added

    def _stored_since(self, events: Sequence[UsageEvent], last_seq: int) -> list[int]:
        """Of a batch, the positions of the events this transaction stored (rows past
        ``last_seq``); of two with one id, the first, as INSERT OR IGNORE keeps it."""
        ids = {row[0] for row in self._conn.execute("SELECT id FROM usage_events WHERE seq > ?", (last_seq,))}
        stored = []
        for i, event in enumerate(events):
            if event.id in ids:
                ids.discard(event.id)
                stored.append(i)
        return stored

    def report(self, query: ReportQuery, *, source: str = "auto") -> ReportResult:
        """A report from rollups when its dimensions allow (``source="auto"``), else from
        raw events; ``source="events"`` or ``"rollups"`` forces one (tests, benchmarks)."""
        rollup = rollups.plan_report(query.by) if source != "events" else None
        if rollup is None:
            if source == "rollups":
                raise ReportError(f"no rollup keeps {', '.join(query.by)}")
            return self._report_events(query)
        sql, params = self._rollup_report_sql(query, rollup)
        n = len(query.by)
        result = ReportResult(by=query.by)
        for row in self._query(sql, params):
            if not row[n + 3]:
                continue  # no rows: one all-NULL aggregate row
            result.rows.append(_report_row(query.by, row, join_cost(row[n], row[n + 1], row[n + 2]), n + 3))
        return result.sort()

    def _report_events(self, query: ReportQuery) -> ReportResult:
        select: list[str] = []
        params: list[Any] = []
        for dim in query.by:
            if dim.startswith(TAG_PREFIX):
                select.append("json_extract(tags, ?)")
                params.append(f'$."{dim[len(TAG_PREFIX) :]}"')
            else:
                select.append(_DIMENSION_SQL[dim])
        where, where_params = _time_filter(query)
        aggregates = (
            "decimal_sum(cost_usd), COUNT(*), SUM(input_tokens), SUM(output_tokens),"
            " SUM(cached_input_tokens),"
            " SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_usd IS NULL), SUM(estimated),"
            " SUM(status = 'error'), SUM(cache_write_1h_tokens)"
        )
        columns = ", ".join([*select, aggregates])
        sql = f"SELECT {columns} FROM usage_events{where}"
        if select:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(select)))
        result = ReportResult(by=query.by)
        n = len(select)
        rows = self._query(sql, [*params, *where_params])
        # Read after the rows: retention records its horizon before deleting anything.
        rollups.check_raw_report(query.since, self.raw_events_pruned_before())
        for row in rows:
            if row[n + 1] == 0:
                continue  # an empty ledger still yields one all-NULL aggregate row
            result.rows.append(_report_row(query.by, row, Decimal(row[n]), n + 1))
        return result.sort()

    def list_events(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM usage_events ORDER BY ts DESC, seq DESC LIMIT ?", (limit,))
        return [event_as_json(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _report_row(by: Sequence[str], row: Sequence[Any], cost: Decimal, first: int) -> ReportRow:
    """A report row from the dimension values and the figures from ``first`` on (requests,
    input, output, cached input, cache write, reasoning tokens, unpriced, estimated, errors,
    1-hour cache write tokens)."""
    figures = [value or 0 for value in row[first : first + 10]]
    return ReportRow(
        dims={dim: row[i] for i, dim in enumerate(by)},
        cost_usd=cost,
        requests=figures[0],
        input_tokens=figures[1],
        output_tokens=figures[2],
        cached_input_tokens=figures[3],
        cache_write_tokens=figures[4],
        reasoning_tokens=figures[5],
        unpriced_requests=figures[6],
        estimated_requests=figures[7],
        error_requests=figures[8],
        cache_write_1h_tokens=figures[9],
    )


def _time_filter(query: ReportQuery) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if query.since:
        clauses.append("ts >= ?")
        params.append(query.since.isoformat())
    if query.until:
        clauses.append("ts < ?")
        params.append((query.until + timedelta(days=1)).isoformat())
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _key(row: sqlite3.Row) -> GatewayKey:
    return GatewayKey(
        name=row["name"],
        key_hash=row["key_hash"],
        key_prefix=row["key_prefix"],
        environment=row["environment"],
        project=row["project"],
        locked=bool(row["locked"]),
        revoked=row["revoked_at"] is not None,
    )
