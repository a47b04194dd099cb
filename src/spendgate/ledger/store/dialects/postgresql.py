"""PostgreSQL, for teams running several gateway replicas on one database: money is
``numeric`` summed exactly by the server, instants ``timestamptz``, JSON ``jsonb``, lists
arrays; a small connection pool serves the gateway's worker threads and its writer thread.

Every connection is in autocommit mode; what must be atomic runs in ``conn.transaction()``.
New events go through ``COPY`` into a per-session staging table and one ``INSERT … SELECT``
(measured faster than ``executemany``, even pipelined, for batches of 500–2,000, and 2.7
times faster than SQLAlchemy Core); many rows go through one statement as arrays
(``unnest``), so its text, and its plan, are the same whatever the number of rows.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import RowMaker, tuple_row
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from spendgate.ledger.errors import StoreError
from spendgate.ledger.events import format_ts
from spendgate.ledger.rollups.plan import utc
from spendgate.ledger.store.dialect import Column, Fragments, SessionReads
from spendgate.ledger.store.sql_store import SQLStore

# Logical column type -> PostgreSQL type.
TYPES = MappingProxyType(
    {
        "text": "text",
        "integer": "integer",
        "bigint": "bigint",
        "float": "double precision",
        "bool": "boolean",
        "money": "numeric",
        "timestamp": "timestamptz",
        "hour": "timestamptz",
        "day": "date",
        "json": "jsonb",
    }
)
# Two-key advisory lock: a constant for "spendgate migrations" and the schema's name, so
# schemas of one database (tests, several installations) migrate independently.
_MIGRATION_LOCK = 0x5347_4D31  # "SGM1"


# --- connections -----------------------------------------------------------------------------
class NamedRow:
    """A row read by position or by column name, as ``sqlite3.Row`` is."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        return self._values[self._index[key]] if isinstance(key, str) else self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def named_row(cursor: psycopg.Cursor[Any]) -> RowMaker[NamedRow]:
    description = cursor.description
    if description is None:
        return tuple  # type: ignore[return-value]
    index = {column.name: i for i, column in enumerate(description)}
    return lambda values: NamedRow(values, index)


def _configure(conn: psycopg.Connection[Any]) -> None:
    # orjson for jsonb both ways (measured: the stdlib json was a third of a batch's cost).
    set_json_dumps(orjson.dumps, context=conn)
    set_json_loads(orjson.loads, context=conn)
    conn.execute("SET TIME ZONE 'UTC'")


def connect(url: str, connect_timeout: float = 10.0) -> psycopg.Connection[Any]:
    """One autocommit connection, or a StoreError saying plainly why not."""
    try:
        conn = psycopg.connect(
            url, autocommit=True, connect_timeout=max(1, round(connect_timeout)), row_factory=named_row
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {redacted(url)}: {str(exc).strip()}") from exc
    _configure(conn)
    return conn


def message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    return ((diag.message_primary if diag is not None else None) or str(exc)).strip()


def redacted(url: str) -> str:
    """The URL without a password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "the given URL"
    host, port, dbname, user = (info.get(k) for k in ("host", "port", "dbname", "user"))
    where = f"{host or 'localhost'}:{port or 5432}/{dbname or user or ''}"
    return f"{user}@{where}" if user else where


def _sql(sql: str) -> str:
    """Portable statements use ``?``; psycopg wants ``%s`` (and ``%%`` for a ``%``)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresSession(SessionReads):
    def __init__(self, conn: psycopg.Connection[Any], staged: set[str] | None = None) -> None:
        self._conn = conn
        self._staged = set() if staged is None else staged  # the connection's staging tables
        self.created: set[str] = set()  # staging tables this transaction made
        self._counts: dict[str, int] = {}  # staging table -> rows staged in this transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(_sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_sql(sql), rows)

    def script(self, sql: str) -> None:
        self._conn.execute(sql)  # type: ignore[arg-type]  # no parameters: sent as written

    def has_table(self, name: str) -> bool:
        return bool(self.scalar(f"SELECT to_regclass('{name}') IS NOT NULL"))

    def insert_new(self, table: str, columns: Sequence[Column], staging: str, key: str) -> set[Any] | None:
        # One INSERT … SELECT in staged order, skipping keys already stored (and the second of
        # two staged rows with one key).
        names = ", ".join(name for name, _ in columns)
        with self._conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}"
                f" ORDER BY n ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
            )
            new = {row[0] for row in cur}
        return None if len(new) == self._counts[staging] else new

    def stage(self, name: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
        # A per-session temporary table emptied at commit (so: inside a transaction only);
        # ``n`` numbers the rows in their order.
        with self._conn.cursor(row_factory=tuple_row) as cur:
            if name not in self._staged and name not in self.created:
                cur.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {name}"
                    f" (n bigserial, {', '.join(f'{n} {TYPES[kind]}' for n, kind in columns)}) ON COMMIT DELETE ROWS"
                )
                self.created.add(name)
            with cur.copy(f"COPY {name} ({', '.join(n for n, _ in columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([TYPES[kind] for _, kind in columns])
                for row in rows:
                    copy.write_row(row)
        self._counts[name] = len(rows)

    def write_rows(self, head: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        if rows:
            names = ", ".join(name for name, _ in columns)
            arrays = ", ".join(f"?::{TYPES[kind]}[]" for _, kind in columns)
            self.execute(
                f"{head} ({names}) SELECT * FROM unnest({arrays}) {tail}", [list(c) for c in zip(*rows, strict=True)]
            )

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        with self._conn.transaction():
            self._conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))", (_MIGRATION_LOCK,)
            )
            if self.scalar("SELECT current_schema()") is None:
                raise StoreError("no schema to migrate: the database URL's search_path names no existing schema")
            yield


# --- the dialect ------------------------------------------------------------------------------
class RollupCost:
    columns = ("cost",)
    add = "cost = r.cost + excluded.cost"

    @staticmethod
    def sum_sql(alias: str) -> str:
        return f"coalesce(sum({alias}.cost), 0)"

    staged = ()  # the server sums the staged events' own cost_usd

    @staticmethod
    def stage(cost: Decimal | None) -> tuple[()]:
        return ()

    @staticmethod
    def group_sum() -> str:
        return "coalesce(sum(cost_usd), 0)"

    @staticmethod
    def of_raw(column: str) -> str:
        return f"coalesce(sum({column}), 0)"

    @staticmethod
    def decode(values: Sequence[Any]) -> Decimal:
        return values[0]


class PostgresDialect(Fragments):
    name = "postgresql"
    max_params = 65535
    event_row_key = "id"  # the primary key (seq has no index)
    prune_chunk = 50_000
    rollup_money = RollupCost()
    # Replicas claiming at the same moment each take different rows and never wait.
    skip_locked = " FOR UPDATE OF d SKIP LOCKED"
    integrity_errors = (pg_errors.IntegrityError,)
    data_errors = (pg_errors.DataError, pg_errors.IntegrityError)
    ddl_types = MappingProxyType(
        {
            **{kind: pg for kind, pg in TYPES.items() if kind not in ("hour", "day")},
            "id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        }
    )

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 6,
        connect_timeout: float = 10.0,
        pool_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.min_size, self.max_size = min_size, max_size
        self.connect_timeout, self.pool_timeout = connect_timeout, pool_timeout
        self._pool: ConnectionPool[Any] | None = None
        # Staging tables each pooled connection has made (temporary tables live as long as it).
        self._staged: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[str]] = weakref.WeakKeyDictionary()

    # --- connections --------------------------------------------------------------------------
    @contextmanager
    def setup_session(self) -> Iterator[PostgresSession]:
        # One direct connection: it fails fast with libpq's own message when the server is
        # down or the URL is wrong (a pool would retry quietly until a timeout).
        conn = connect(self.url, self.connect_timeout)
        try:
            yield PostgresSession(conn)
        except psycopg.Error as exc:
            raise StoreError(f"migrating the schema of {redacted(self.url)} failed: {message(exc)}") from exc
        finally:
            conn.close()

    def open(self) -> None:
        self._pool = ConnectionPool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            kwargs={
                "autocommit": True,
                "row_factory": named_row,
                "connect_timeout": max(1, round(self.connect_timeout)),
            },
            configure=_configure,
            # A connection is checked (one empty round trip) as it is handed out, so after a
            # database restart callers get a fresh one rather than the dead one's error.
            check=ConnectionPool.check_connection,
            open=False,
            name="spendgate",
            timeout=self.pool_timeout,
        )
        try:
            self._pool.open(wait=True, timeout=self.connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"cannot open connections to PostgreSQL at {redacted(self.url)} ({exc})") from exc

    @contextmanager
    def session(self) -> Iterator[PostgresSession]:
        assert self._pool is not None
        with self._pool.connection() as conn:
            yield PostgresSession(conn)

    @contextmanager
    def transaction(self) -> Iterator[PostgresSession]:
        assert self._pool is not None
        with self._pool.connection() as conn:
            staged = self._staged.setdefault(conn, set())
            session = PostgresSession(conn, staged)
            with conn.transaction():
                yield session
            staged.update(session.created)  # committed: they exist for the connection's life

    @contextmanager
    def snapshot(self) -> Iterator[PostgresSession]:
        assert self._pool is not None
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresSession(conn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    # --- errors -------------------------------------------------------------------------------
    def integrity_kind(self, exc: BaseException) -> str:
        if isinstance(exc, pg_errors.UniqueViolation):
            return "unique"
        return "foreign_key" if isinstance(exc, pg_errors.ForeignKeyViolation) else "other"

    def error_message(self, exc: BaseException) -> str:
        return message(exc)

    # --- values -------------------------------------------------------------------------------
    ts = staticmethod(utc)
    ts_text = staticmethod(format_ts)

    def money(self, amount: Decimal) -> Decimal:
        return amount

    def money_value(self, value: Decimal) -> Decimal:
        return value

    def json(self, value: Any) -> Jsonb:
        return Jsonb(value)

    def json_value(self, value: Any) -> Any:
        return value  # psycopg parsed it

    def int_list(self, values: Sequence[int]) -> list[int]:
        return list(values)

    def int_list_value(self, value: Sequence[int]) -> tuple[int, ...]:
        return tuple(value)

    def text_list(self, values: Sequence[str]) -> list[str]:
        return list(values)

    def text_list_value(self, value: Sequence[str]) -> tuple[str, ...]:
        return tuple(value)

    def bucket(self, grain: str, at: datetime | date) -> datetime | date:
        if isinstance(at, datetime):
            return utc(at) if grain == "hour" else utc(at).date()
        return at

    def bucket_of_text(self, grain: str, text: str) -> datetime | date:
        if grain == "hour":  # "2025-03-10T14"
            return datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), tzinfo=UTC)
        return date.fromisoformat(text)

    # --- SQL fragments (see Fragments) ----------------------------------------------------------
    MONEY_SUM = "coalesce(sum({}), 0)"
    HOUR_BUCKET = "date_trunc('hour', {} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    DAY_BUCKET = "({} AT TIME ZONE 'UTC')::date"
    TS_HOUR = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00"Z"')"""
    TS_DAY = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    TS_WEEK = """to_char({} AT TIME ZONE 'UTC', 'IYYY-"W"IW')"""
    TS_MONTH = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM')"
    BUCKET_HOUR = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00"Z"')"""  # a timestamptz
    BUCKET_DAY = "to_char({}::timestamp, 'YYYY-MM-DD')"  # a date
    BUCKET_WEEK = """to_char({}::timestamp, 'IYYY-"W"IW')"""
    BUCKET_MONTH = "to_char({}::timestamp, 'YYYY-MM')"
    JSON_KEY = "({} ->> ?::text)"

    def key_in(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{expr} = ANY(?)", [list(values)]  # one statement whatever the number of values

    JSON_KEY_PARAM = "{}"

    def legacy_versions(self, session: PostgresSession) -> set[str]:
        return set()  # PostgreSQL schemas were versioned in schema_migrations from the start


class PostgresStore(SQLStore):
    """``postgresql://user@host:port/db`` (libpq URL; ``?options=-csearch_path%3DNAME`` picks
    a schema): ``SQLStore`` over ``PostgresDialect``. Pending migrations are applied on open
    unless ``auto_migrate=False``."""

    def __init__(self, url: str, *, auto_migrate: bool = True, **options: Any) -> None:
        """``options``: those of ``PostgresDialect`` (pool sizes and timeouts)."""
        self.url = url
        super().__init__(PostgresDialect(url, **options), auto_migrate=auto_migrate)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PostgresStore:
        return cls(url, **kwargs)
