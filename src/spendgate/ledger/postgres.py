"""The PostgreSQL backend, for teams running several gateway replicas on one database.

The same behaviour as ``SQLiteStore`` (same methods, return types and errors), with what
PostgreSQL does better: money is ``NUMERIC`` summed exactly by the server, times are
``timestamptz``, tags ``jsonb``, the schema is versioned (``postgres_migrations``), and a
small connection pool serves the gateway's worker threads and its one writer thread.

Every connection is in autocommit mode; whatever must be atomic runs in an explicit
``conn.transaction()``. Reports and budget spend over long ranges are answered from rollups
(``postgres_rollups.py``), kept in the same transaction as the events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from spendgate.attribution.model import Directory, GatewayKey, Project, Team
from spendgate.ledger import postgres_migrations, rollups
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.postgres_alerts import PostgresAlertsMixin
from spendgate.ledger.postgres_budgets import PostgresBudgetsMixin
from spendgate.ledger.postgres_events import (
    AGGREGATES,
    COPY_SQL,
    DIMENSION_SQL,
    MOVE_SQL,
    STAGING_SQL,
    STAGING_TYPES,
    event_as_json,
    event_row,
    time_filter,
)
from spendgate.ledger.postgres_rollups import PostgresRollupsMixin
from spendgate.ledger.store import StoreError
from spendgate.reports.spec import TAG_PREFIX, ReportError, ReportQuery, ReportResult, ReportRow

_BUMP = "UPDATE meta SET value = value + 1 WHERE name = 'config_version'"


def _configure(conn: psycopg.Connection) -> None:
    # orjson for jsonb both ways (measured: the stdlib json was a third of a batch's cost).
    set_json_dumps(orjson.dumps, context=conn)
    set_json_loads(orjson.loads, context=conn)
    conn.execute("SET TIME ZONE 'UTC'")


def connect(url: str, connect_timeout: float = 10.0) -> psycopg.Connection:
    """One autocommit connection, or a StoreError saying plainly why not."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(connect_timeout)))
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {_redacted(url)}: {str(exc).strip()}") from exc


class PostgresStore(PostgresBudgetsMixin, PostgresAlertsMixin, PostgresRollupsMixin):
    """``postgresql://user@host:port/db`` (libpq URL; ``?options=-csearch_path%3DNAME`` picks
    a schema). Pending migrations are applied on open unless ``auto_migrate=False``."""

    def __init__(
        self,
        url: str,
        *,
        auto_migrate: bool = True,
        min_size: int = 1,
        max_size: int = 6,
        connect_timeout: float = 10.0,
        pool_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._dims_cache = {}
        # One direct connection first: it fails fast with libpq's own message when the
        # server is down or the URL is wrong (a pool would retry quietly until a timeout).
        first = connect(url, connect_timeout)
        try:
            if auto_migrate:
                postgres_migrations.migrate(first)
            elif postgres_migrations.pending(first):
                raise StoreError("the database schema is not up to date; run `spendgate migrate --db URL` first")
        except psycopg.Error as exc:
            raise StoreError(f"migrating the schema of {_redacted(url)} failed: {_message(exc)}") from exc
        finally:
            first.close()
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": max(1, round(connect_timeout))},
            configure=_configure,
            # A connection is checked (one empty round trip) as it is handed out, so after a
            # database restart callers get a fresh one rather than the dead one's error.
            check=ConnectionPool.check_connection,
            open=False,
            name="spendgate",
            timeout=pool_timeout,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"cannot open connections to PostgreSQL at {_redacted(url)} ({exc})") from exc

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PostgresStore:
        return cls(url, **kwargs)

    # --- plumbing (the mixins use these) --------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        """An operational write transaction: leaves the config version alone."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _write(
        self,
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        duplicate: str | None = None,
        missing: str | None = None,
    ) -> None:
        """Management statements in one transaction that also bumps the config version, so
        every gateway sharing the database notices. ``duplicate``/``missing`` are the
        messages for a race lost to another writer (the callers check before writing)."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute(_BUMP)
        except pg_errors.UniqueViolation as exc:
            raise StoreError(duplicate or _message(exc)) from exc
        except pg_errors.ForeignKeyViolation as exc:
            raise StoreError(missing or _message(exc)) from exc
        except pg_errors.IntegrityError as exc:
            raise StoreError(_message(exc)) from exc

    def _exists(self, table: str, name: str) -> bool:
        return bool(self._query(f"SELECT 1 FROM {table} WHERE name = %s", (name,)))

    def migrate(self) -> list[str]:
        """Apply pending schema migrations; the versions applied (none when up to date)."""
        with self._pool.connection() as conn:
            return postgres_migrations.migrate(conn)

    def schema_versions(self) -> list[str]:
        with self._pool.connection() as conn:
            return sorted(postgres_migrations.applied(conn))

    # --- teams, projects, keys -------------------------------------------------------------
    def create_team(self, name: str, cost_center: str | None = None) -> Team:
        duplicate = f"team {name!r} already exists"
        if self._exists("teams", name):
            raise StoreError(duplicate)
        self._write(
            [("INSERT INTO teams (name, cost_center) VALUES (%s, %s)", (name, cost_center))], duplicate=duplicate
        )
        return Team(name, cost_center)

    def list_teams(self) -> list[Team]:
        return [Team(r["name"], r["cost_center"]) for r in self._query("SELECT * FROM teams ORDER BY name")]

    def create_project(self, name: str, team: str) -> Project:
        missing = f"unknown team {team!r}; create it first with `spendgate teams create {team}`"
        if not self._exists("teams", team):
            raise StoreError(missing)
        duplicate = f"project {name!r} already exists"
        if self._exists("projects", name):
            raise StoreError(duplicate)
        self._write(
            [("INSERT INTO projects (name, team) VALUES (%s, %s)", (name, team))],
            duplicate=duplicate,
            missing=missing,
        )
        return Project(name, team)

    def list_projects(self) -> list[Project]:
        return [Project(r["name"], r["team"]) for r in self._query("SELECT * FROM projects ORDER BY name")]

    def create_key(self, key: GatewayKey) -> GatewayKey:
        missing = f"unknown project {key.project!r}"
        if key.project and not self._exists("projects", key.project):
            raise StoreError(missing)
        duplicate = f"key {key.name!r} already exists"
        if self._exists("gateway_keys", key.name):
            raise StoreError(duplicate)
        self._write(
            [
                (
                    "INSERT INTO gateway_keys (name, key_hash, key_prefix, environment, project, locked)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (key.name, key.key_hash, key.key_prefix, key.environment, key.project, key.locked),
                )
            ],
            duplicate=duplicate,
            missing=missing,
        )
        return key

    def list_keys(self) -> list[GatewayKey]:
        return [_key(r) for r in self._query("SELECT * FROM gateway_keys ORDER BY name")]

    def revoke_key(self, name: str) -> GatewayKey:
        rows = self._query("SELECT * FROM gateway_keys WHERE name = %s", (name,))
        if not rows:
            raise StoreError(f"unknown key {name!r}")
        if rows[0]["revoked_at"] is None:
            self._write(
                [("UPDATE gateway_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,))]
            )
        return _key(self._query("SELECT * FROM gateway_keys WHERE name = %s", (name,))[0])

    def config_version(self) -> int:
        return int(self._query("SELECT value FROM meta WHERE name = 'config_version'")[0]["value"])

    def load_directory(self) -> Directory:
        # One REPEATABLE READ snapshot: the version always matches the rows read with it.
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            version = conn.execute("SELECT value FROM meta WHERE name = 'config_version'").fetchone()["value"]
            teams = [Team(r["name"], r["cost_center"]) for r in conn.execute("SELECT * FROM teams")]
            projects = [Project(r["name"], r["team"]) for r in conn.execute("SELECT * FROM projects")]
            keys = [_key(r) for r in conn.execute("SELECT * FROM gateway_keys")]
        return Directory.build(teams, projects, keys, version=int(version))

    # --- the ledger ---------------------------------------------------------------------
    def append_events(self, events: Sequence[UsageEvent]) -> int:
        """Store the new events and add them to the rollups, in one transaction. Only events
        actually stored are added (a replayed id is not counted twice); an event older than
        the retention horizon is refused, since whether it is new can no longer be told."""
        if not events:
            return 0
        rows = [event_row(e) for e in events]
        with self._pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            dims_ids, created = self._event_dims_ids(cur, events)
            cur.execute(STAGING_SQL)
            with cur.copy(COPY_SQL) as copy:
                copy.set_types(STAGING_TYPES)
                for row, ids in zip(rows, dims_ids, strict=True):
                    copy.write_row((*row, *ids))
            stored = [row[0] for row in cur.execute(MOVE_SQL)]
            if stored:
                self._add_staged_to_rollups(cur, None if len(stored) == len(events) else stored)
        self._dims_committed(created)
        return len(stored)

    def report(self, query: ReportQuery, *, source: str = "auto") -> ReportResult:
        """A report from rollups when its dimensions allow (``source="auto"``), else from
        raw events; ``source="events"`` or ``"rollups"`` forces one (tests, benchmarks)."""
        rollup = rollups.plan_report(query.by) if source != "events" else None
        if rollup is None:
            if source == "rollups":
                raise ReportError(f"no rollup keeps {', '.join(query.by)}")
            return self._report_events(query)
        return _result(query.by, self._report_rollup_rows(query, rollup))

    def _report_events(self, query: ReportQuery) -> ReportResult:
        select: list[str] = []
        params: list[Any] = []
        for dim in query.by:
            if dim.startswith(TAG_PREFIX):
                select.append("tags ->> %s::text")
                params.append(dim[len(TAG_PREFIX) :])
            else:
                select.append(DIMENSION_SQL[dim])
        where, where_params = time_filter(query)
        sql = f"SELECT {', '.join([*select, AGGREGATES])} FROM usage_events{where}"
        if select:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(select)))
        with self._pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(sql, [*params, *where_params]).fetchall()
        # Read after the rows: retention records its horizon before deleting anything.
        rollups.check_raw_report(query.since, self.raw_events_pruned_before())
        return _result(query.by, rows)

    def list_events(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM usage_events ORDER BY ts DESC, seq DESC LIMIT %s", (limit,))
        return [event_as_json(r) for r in rows]

    def close(self) -> None:
        self._pool.close()


def _result(by: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> ReportResult:
    """Report rows from (dimension values…, cost, requests, input, output, cached input,
    cache write, reasoning tokens, unpriced, estimated, errors, 1-hour cache write tokens)."""
    result = ReportResult(by=by)
    n = len(by)
    for row in rows:
        if row[n + 1] == 0:
            continue  # an empty ledger still yields one aggregate row
        figures = [int(value) for value in row[n + 1 : n + 11]]
        result.rows.append(
            ReportRow(
                dims={dim: row[i] for i, dim in enumerate(by)},
                cost_usd=row[n],
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
        )
    return result.sort()


def _key(row: dict[str, Any]) -> GatewayKey:
    return GatewayKey(
        name=row["name"],
        key_hash=row["key_hash"],
        key_prefix=row["key_prefix"],
        environment=row["environment"],
        project=row["project"],
        locked=row["locked"],
        revoked=row["revoked_at"] is not None,
    )


def _message(exc: psycopg.Error) -> str:
    return (exc.diag.message_primary or str(exc)).strip()


def _redacted(url: str) -> str:
    """The URL without a password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "the given URL"
    host, port, dbname, user = (info.get(k) for k in ("host", "port", "dbname", "user"))
    where = f"{host or 'localhost'}:{port or 5432}/{dbname or user or ''}"
    return f"{user}@{where}" if user else where
