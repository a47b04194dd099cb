"""SQLite: zero set-up, WAL so readers (CLI, reports) never block the gateway's writer, one
connection guarded by a lock (the gateway writes from a single writer thread; see
``ledger/spool/writer.py``).

SQLite has no exact decimal type (``DECIMAL`` is REAL) and no time type. Money is stored as
exact decimal text and summed by ``decimal_sum``, a Python aggregate; instants are
``format_ts`` text (fixed-width UTC, so text order is time order). A rollup's cost is whole
nano-dollars (``cost_nanos``) plus atto-dollars below a nano-dollar (``cost_attos``, 0 <= x <
10^9), both integers SQLite sums natively; only a cost with more than 18 decimal places (no
real price has one) goes to ``cost_rest``, exact decimal text, normally NULL. An integer
overflow (over 9.2 billion dollars in one bucket) fails a CHECK rather than becoming a float.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from spendgate.ledger.errors import StoreError
from spendgate.ledger.events import format_ts
from spendgate.ledger.private_files import create_private_file
from spendgate.ledger.rollups.plan import EXACT, ZERO, dims_key, utc
from spendgate.ledger.store.dialect import BIGINT, TEXT, Column, Fragments, SessionReads
from spendgate.ledger.store.sql_store import SQLStore

_NANO = 10**9


# --- exact money ------------------------------------------------------------------------------
class DecimalSum:
    """SQLite aggregate summing decimal text exactly (at any size: no 28-digit rounding);
    NULL (unpriced) rows add nothing. Over no rows at all it is NULL."""

    def __init__(self) -> None:
        self.total = ZERO

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = EXACT.add(self.total, Decimal(value))

    def finalize(self) -> str:
        return str(self.total)


def decimal_add(a: str, b: str) -> str:
    return str(EXACT.add(Decimal(a), Decimal(b)))


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


class RollupCost:
    """A rollup row's cost as (cost_nanos, cost_attos, cost_rest): see the module docstring."""

    columns = ("cost_nanos", "cost_attos", "cost_rest")
    add = (
        f"cost_nanos = r.cost_nanos + excluded.cost_nanos + (r.cost_attos + excluded.cost_attos) / {_NANO},"
        f" cost_attos = (r.cost_attos + excluded.cost_attos) % {_NANO},"
        " cost_rest = CASE WHEN excluded.cost_rest IS NULL THEN r.cost_rest WHEN r.cost_rest IS NULL"
        " THEN excluded.cost_rest ELSE decimal_add(r.cost_rest, excluded.cost_rest) END"
    )

    @staticmethod
    def sum_sql(alias: str) -> str:
        return (
            f"SUM({alias}.cost_nanos), SUM({alias}.cost_attos),"
            f" decimal_sum({alias}.cost_rest) FILTER (WHERE {alias}.cost_rest IS NOT NULL)"
        )

    staged = (("cost_nanos", BIGINT), ("cost_attos", BIGINT), ("cost_rest", TEXT))

    @staticmethod
    def stage(cost: Decimal | None) -> tuple[int, int, str | None]:
        return split_cost(ZERO if cost is None else cost)

    @staticmethod
    def group_sum() -> str:
        # The attos carried into nanos, as ``add`` does.
        return (
            f"sum(cost_nanos) + sum(cost_attos) / {_NANO}, sum(cost_attos) % {_NANO},"
            " decimal_sum(cost_rest) FILTER (WHERE cost_rest IS NOT NULL)"  # NULL, with no Python call, when none
        )

    @staticmethod
    def of_raw(column: str) -> str:
        return f"0, 0, decimal_sum({column})"

    @staticmethod
    def decode(values: Sequence[Any]) -> Decimal:
        return join_cost(*values)


# --- statements ---------------------------------------------------------------------------------
def split_script(script: str) -> list[str]:
    """The statements of a script (``executescript`` would commit the migration's transaction)."""
    statements, start = [], 0
    for i, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : i + 1]):
            statements.append(script[start : i + 1])
            start = i + 1
    rest = script[start:]
    if any(line.split("--", 1)[0].strip() for line in rest.splitlines()):
        statements.append(rest)
    return statements


class SQLiteSession(SessionReads):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._staged: dict[str, int] = {}  # staging table -> rows staged last

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def script(self, sql: str) -> None:
        for statement in split_script(sql):
            self._conn.execute(statement)

    def has_table(self, name: str) -> bool:
        return self.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    def insert_new(self, table: str, columns: Sequence[Column], staging: str, key: str) -> set[Any] | None:
        # ON CONFLICT (key) DO NOTHING skips only a stored key: unlike INSERT OR IGNORE, a
        # NOT NULL or CHECK failure still fails. ("WHERE true": SQLite's parser needs it
        # between a SELECT and ON CONFLICT.)
        names = ", ".join(name for name, _ in columns)
        last = self.scalar(f"SELECT max(rowid) FROM {table}") or 0
        before = self._conn.total_changes
        self._conn.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} WHERE true ORDER BY n"
            f" ON CONFLICT ({key}) DO NOTHING"
        )
        if self._conn.total_changes - before == self._staged[staging]:
            return None
        # Some were there already: the rows this statement added are those past ``last``.
        return {row[0] for row in self._conn.execute(f"SELECT {key} FROM {table} WHERE rowid > ?", (last,))}

    def stage(self, name: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
        types = SQLiteDialect.ddl_types
        self._conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {name}"
            f" (n INTEGER PRIMARY KEY, {', '.join(f'{n} {types[kind]}' for n, kind in columns)})"
        )
        self._conn.execute(f"DELETE FROM {name}")
        self.write_rows(f"INSERT INTO {name}", columns, rows)
        self._staged[name] = len(rows)

    def write_rows(self, head: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        if rows:
            names = ", ".join(name for name, _ in columns)
            self._conn.executemany(f"{head} ({names}) VALUES ({', '.join('?' * len(columns))}) {tail}", rows)

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        with _immediate(self._conn):
            yield


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction: IMMEDIATE takes the database's write lock up front, which is what
    serializes writers of several processes (and replicas' alert claims)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --- the dialect ----------------------------------------------------------------------------------
class SQLiteDialect(Fragments):
    name = "sqlite"
    max_params = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
    event_row_key = "seq"  # the rowid: deletes need no other index
    prune_chunk = 20_000  # rows deleted per transaction, so the gateway's writer never waits long
    rollup_money = RollupCost()
    skip_locked = ""  # claims run in an IMMEDIATE transaction: one process at a time
    integrity_errors = (sqlite3.IntegrityError,)
    data_errors = (sqlite3.IntegrityError, sqlite3.DataError)
    ddl_types = MappingProxyType(
        {
            "text": "TEXT",
            "integer": "INTEGER",
            "bigint": "INTEGER",
            "float": "REAL",
            "bool": "INTEGER",
            "money": "TEXT",  # exact decimal text, summed with decimal_sum
            "timestamp": "TEXT",  # format_ts: fixed-width UTC
            "json": "TEXT",
            "id": "INTEGER PRIMARY KEY",  # an auto-numbered key (the rowid)
        }
    )

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Private from its first byte (SQLite would create it with the umask's 0644); its
            # -wal and -shm files take its mode.
            create_private_file(self.path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.create_aggregate("decimal_sum", 1, DecimalSum)
        self._conn.create_function("decimal_add", 2, decimal_add, deterministic=True)
        # For migrations that compute in SQL what Python computes for each batch.
        self._conn.create_function("dims_key", -1, lambda *values: dims_key(values), deterministic=True)
        self._conn.create_function("iso_week", 1, iso_week, deterministic=True)
        for i, part in enumerate(("nanos", "attos", "rest")):
            self._conn.create_function(
                f"cost_{part}", 1, lambda text, i=i: split_cost(Decimal(text or 0))[i], deterministic=True
            )
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a process crash; only a power loss may lose the last
        # commits (the local spool is what makes events durable before the database).
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA temp_store = MEMORY")  # staging tables of a batch
        self._session = SQLiteSession(self._conn)

    # --- connections --------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[SQLiteSession]:
        with self._lock:
            yield self._session

    setup_session = session

    def open(self) -> None:
        pass

    @contextmanager
    def transaction(self) -> Iterator[SQLiteSession]:
        with self._lock, _immediate(self._conn):
            yield self._session

    @contextmanager
    def snapshot(self) -> Iterator[SQLiteSession]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._session
            finally:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- errors -------------------------------------------------------------------------------
    def integrity_kind(self, exc: BaseException) -> str:
        name = getattr(exc, "sqlite_errorname", "")
        if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
            return "unique"
        return "foreign_key" if name == "SQLITE_CONSTRAINT_FOREIGNKEY" else "other"

    def error_message(self, exc: BaseException) -> str:
        return str(exc)

    # --- values -------------------------------------------------------------------------------
    ts = staticmethod(format_ts)

    def ts_text(self, value: str) -> str:
        return value

    def money(self, amount: Decimal) -> str:
        return str(amount)

    def money_value(self, value: str) -> Decimal:
        return Decimal(value)

    def json(self, value: Any) -> str:
        return orjson.dumps(value).decode()

    def json_value(self, value: str | None) -> Any:
        return orjson.loads(value) if value else None

    def int_list(self, values: Sequence[int]) -> str:
        return ",".join(str(v) for v in values)

    def int_list_value(self, value: str) -> tuple[int, ...]:
        return tuple(int(v) for v in value.split(",") if v)

    def text_list(self, values: Sequence[str]) -> str:
        return ",".join(values)

    def text_list_value(self, value: str) -> tuple[str, ...]:
        return tuple(value.split(","))

    def bucket(self, grain: str, at: datetime | date) -> str:
        if isinstance(at, datetime):
            return utc(at).strftime("%Y-%m-%dT%H" if grain == "hour" else "%Y-%m-%d")
        return at.isoformat()

    def bucket_of_text(self, grain: str, text: str) -> str:
        return text

    # --- SQL fragments (see Fragments) ----------------------------------------------------------
    MONEY_SUM = "coalesce(decimal_sum({}), '0')"
    HOUR_BUCKET = "substr({}, 1, 13)"  # format_ts text: "2025-03-10T14"
    DAY_BUCKET = "substr({}, 1, 10)"
    TS_HOUR = "substr({}, 1, 13) || ':00Z'"  # format_ts text
    TS_DAY = "substr({}, 1, 10)"
    TS_WEEK = "iso_week(substr({}, 1, 10))"  # SQLite's strftime has no %G/%V before 3.46
    TS_MONTH = "substr({}, 1, 7)"
    BUCKET_HOUR = "{} || ':00Z'"  # an hourly bucket is the hour's text
    BUCKET_DAY = "substr({}, 1, 10)"  # a daily bucket is the day's text, an hourly one starts with it
    BUCKET_WEEK = "iso_week({})"
    BUCKET_MONTH = "substr({}, 1, 7)"
    JSON_KEY = "json_extract({}, ?)"
    JSON_KEY_PARAM = '$."{}"'

    def legacy_versions(self, session: SQLiteSession) -> set[str]:
        # Before schema_migrations, meta.schema_version said what a SQLite ledger had:
        # 2 is everything up to rollups (0001-0003). A version 1 ledger runs 0001 and 0002
        # again (they create only what is missing) and then 0003, which rolls up its events.
        if not session.has_table("meta"):
            return set()
        version = session.scalar("SELECT value FROM meta WHERE name = 'schema_version'")
        return {"0001", "0002", "0003"} if version is not None and version >= 2 else set()


def iso_week(day: str | None) -> str | None:
    """The ISO 8601 week (``2025-W11``) of a ``YYYY-MM-DD`` day (what PostgreSQL's
    ``to_char(…, 'IYYY-"W"IW')`` gives)."""
    if day is None:
        return None
    year, week, _ = date.fromisoformat(day[:10]).isocalendar()
    return f"{year:04d}-W{week:02d}"


class SQLiteStore(SQLStore):
    """The store on a SQLite file (``:memory:`` too): ``SQLStore`` over ``SQLiteDialect``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(SQLiteDialect(path))

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        # sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:
        path = url.split(":", 1)[1]
        path = path[3:] if path.startswith("///") else path.lstrip("/")
        if not path:
            raise StoreError(f"no file in database URL {url!r}; use sqlite:///path.db")
        return cls(path)
