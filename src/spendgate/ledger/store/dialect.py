"""What differs between the databases the store runs on, and nothing else.

The store (``sql_store.py`` and its parts) writes every statement once, in SQL both SQLite
and PostgreSQL accept, with ``?`` placeholders. A dialect (``dialects/sqlite.py``,
``dialects/postgresql.py``) supplies the rest, the way Django's per-backend *operations*
object does:

- connections and locking: a session for reads, a write transaction (SQLite: ``BEGIN
  IMMEDIATE`` on its one connection; PostgreSQL: a pooled connection), a consistent snapshot,
  the lock migrations take;
- value codecs: how money, instants, JSON and lists are passed in and read back (SQLite keeps
  exact decimal text and fixed-width UTC text; PostgreSQL ``numeric`` and ``timestamptz``);
- SQL fragments: an exact decimal sum, a UTC day or month of an instant, one key of a JSON
  column, how a rollup row keeps its money;
- bulk writes: new rows skipping keys already stored (SQLite ``executemany``; PostgreSQL
  ``COPY`` into a staging table), and many rows through one statement (an upsert).

Columns are declared with the logical types below; a dialect maps them to its own (in bulk
writes, and in the ``{type}`` substitutions of portable migration files).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

# Logical column types.
TEXT = "text"
INTEGER = "integer"
BIGINT = "bigint"
FLOAT = "float"
BOOL = "bool"
MONEY = "money"  # exact decimal dollars
TIMESTAMP = "timestamp"  # an instant
HOUR = "hour"  # a rollup bucket: a UTC hour
DAY = "day"  # a rollup bucket: a UTC day
JSON = "json"  # an object, queryable (tags, rates)

Column = tuple[str, str]  # (name, logical type)


class Row(Protocol):
    """A result row, read by position or by column name (``sqlite3.Row`` is one)."""

    def __getitem__(self, key: int | str | slice) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str]: ...


class Session(Protocol):
    """One connection for the length of a ``with`` block: in a transaction or not, depending
    on how the dialect handed it out."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); the cursor (``rowcount``, ``fetchall``)."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def script(self, sql: str) -> None:
        """Several statements without parameters (a migration file)."""
        ...

    def has_table(self, name: str) -> bool: ...

    def insert_new(self, table: str, columns: Sequence[Column], staging: str, key: str) -> set[Any] | None:
        """Move the staged rows whose ``key`` is not stored yet into ``table`` (of two with
        one key, the first staged); the keys inserted, or None when every staged row was."""
        ...

    def stage(self, name: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
        """Rows the next statements of this transaction read from the temporary table
        ``name`` (its rows before are gone), with an ``n`` column numbering them in order.
        Fast for thousands (SQLite: ``executemany``; PostgreSQL: ``COPY``)."""
        ...

    def write_rows(self, head: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """``{head} (columns) <rows> {tail}`` as one bulk write: ``head`` is ``INSERT INTO
        table [AS alias]``, ``tail`` an ``ON CONFLICT`` clause. Rows must not repeat a
        conflict key (PostgreSQL refuses to update one row twice in a statement)."""
        ...

    def migration_lock(self) -> AbstractContextManager[None]:
        """A transaction holding the database's migration lock (replicas starting together
        queue on it)."""
        ...


class SessionReads:
    """What a session reads, given its ``execute`` (both dialects' sessions build on it)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]


class Fragments:
    """SQL fragments from a dialect's templates (``{}``: the expression), so that each
    dialect module shows them as a table."""

    MONEY_SUM: str  # the exact sum of a money column, 0 over no rows
    TS_HOUR: str  # the UTC hour (YYYY-MM-DDTHH:00Z) of an instant
    TS_DAY: str  # the UTC day (YYYY-MM-DD) of an instant
    TS_WEEK: str  # the ISO 8601 week (YYYY-Www) of an instant's UTC day
    TS_MONTH: str
    HOUR_BUCKET: str  # the hourly rollup bucket of an instant
    DAY_BUCKET: str  # the daily rollup bucket of an instant
    BUCKET_HOUR: str  # the hour (YYYY-MM-DDTHH:00Z) of an hourly rollup bucket
    BUCKET_DAY: str  # the day (YYYY-MM-DD) of a rollup bucket
    BUCKET_WEEK: str
    BUCKET_MONTH: str
    JSON_KEY: str  # one key of a JSON column as text, with one placeholder for …
    JSON_KEY_PARAM: str  # … this parameter (``{}``: the key)

    def money_sum(self, expr: str) -> str:
        return self.MONEY_SUM.format(expr)

    def ts_day(self, expr: str) -> str:
        return self.TS_DAY.format(expr)

    def ts_month(self, expr: str) -> str:
        return self.TS_MONTH.format(expr)

    def hour_bucket(self, expr: str) -> str:
        return self.HOUR_BUCKET.format(expr)

    def day_bucket(self, expr: str) -> str:
        return self.DAY_BUCKET.format(expr)

    def bucket_day(self, expr: str) -> str:
        return self.BUCKET_DAY.format(expr)

    def bucket_month(self, expr: str) -> str:
        return self.BUCKET_MONTH.format(expr)

    def ts_label(self, dim: str, expr: str) -> str:
        """A time dimension (``hour``, ``day``, ``week``, ``month``: reports/spec.py) of an
        instant, labelled as reports show it."""
        return getattr(self, f"TS_{dim.upper()}").format(expr)

    def bucket_label(self, dim: str, expr: str) -> str:
        """A time dimension of a rollup bucket (by hour: of an hourly bucket only)."""
        return getattr(self, f"BUCKET_{dim.upper()}").format(expr)

    def json_key(self, column: str, key: str) -> tuple[str, Any]:
        """SQL with one placeholder reading one key of a JSON column as text, and its parameter."""
        return self.JSON_KEY.format(column), self.JSON_KEY_PARAM.format(key)

    def key_in(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``expr`` is one of ``values`` (no more than ``max_params`` of them), and the parameters."""
        return f"{expr} IN ({', '.join('?' * len(values))})", list(values)


class RollupMoney(Protocol):
    """How a rollup row keeps its cost: as columns summed natively by the database, exact."""

    columns: tuple[str, ...]  # the rollup table's money columns
    add: str  # the upsert's SET items adding ``excluded`` to the row aliased ``r``

    def sum_sql(self, alias: str) -> str:
        """Select expressions summing the money of rows aliased ``alias``."""
        ...

    staged: tuple[Column, ...]  # what a staged event carries for them (rollups/maintain.py)

    def stage(self, cost: Decimal | None) -> tuple[Any, ...]:
        """A staged event's values for ``staged`` (None: unpriced, adds nothing)."""
        ...

    def group_sum(self) -> str:
        """Select expressions summing the staged events of a group into the money columns."""
        ...

    def of_raw(self, column: str) -> str:
        """Select expressions giving the sum of a raw money column in ``sum_sql``'s shape."""
        ...

    def decode(self, values: Sequence[Any]) -> Decimal:
        """The exact sum from what ``sum_sql`` or ``of_raw`` selected (NULLs when no rows)."""
        ...


class Dialect(Protocol):
    name: str  # "sqlite" or "postgresql": also the suffix of backend-only migration files
    max_params: int  # parameters one statement may carry
    event_row_key: str  # the cheapest unique column to delete usage_events rows by
    prune_chunk: int  # raw events deleted per transaction by retention
    rollup_money: RollupMoney
    ddl_types: Mapping[str, str]  # ``{name}`` substitutions of portable migration files
    skip_locked: str  # appended to a SELECT of rows to claim ("" where a write lock serializes)

    # --- connections ------------------------------------------------------------------------
    def setup_session(self) -> AbstractContextManager[Session]:
        """The session migrations run in when the store opens (before any pool exists)."""
        ...

    def open(self) -> None:
        """Ready for sessions, once the schema is up to date."""
        ...

    def session(self) -> AbstractContextManager[Session]:
        """Each statement its own transaction: reads, and writes that need nothing else."""
        ...

    def transaction(self) -> AbstractContextManager[Session]:
        """A write transaction; rolled back if the block raises."""
        ...

    def snapshot(self) -> AbstractContextManager[Session]:
        """A read-only transaction: every statement sees the same state."""
        ...

    def close(self) -> None: ...

    # --- errors -------------------------------------------------------------------------------
    integrity_errors: tuple[type[BaseException], ...]
    # What the driver raises for a value the database cannot hold (an integer past 64 bits, a NUL
    # in text, a CHECK): the events' fault, unlike an outage, a lock or a full disk.
    data_errors: tuple[type[BaseException], ...]

    def integrity_kind(self, exc: BaseException) -> str:
        """``"unique"``, ``"foreign_key"`` or ``"other"`` for one of ``integrity_errors``."""
        ...

    def error_message(self, exc: BaseException) -> str: ...

    # --- values in and out ---------------------------------------------------------------------
    def ts(self, at: datetime) -> Any: ...
    def ts_text(self, value: Any) -> str:
        """A stored instant as ``events.format_ts`` text."""
        ...

    def money(self, amount: Decimal) -> Any: ...
    def money_value(self, value: Any) -> Decimal: ...
    def json(self, value: Any) -> Any: ...
    def json_value(self, value: Any) -> Any: ...
    def int_list(self, values: Sequence[int]) -> Any: ...
    def int_list_value(self, value: Any) -> tuple[int, ...]: ...
    def text_list(self, values: Sequence[str]) -> Any: ...
    def text_list_value(self, value: Any) -> tuple[str, ...]: ...
    def bucket(self, grain: str, at: datetime | date) -> Any:
        """A rollup bucket (``"hour"``: the UTC hour starting at ``at``; ``"day"``: its day)."""
        ...

    def bucket_of_text(self, grain: str, text: str) -> Any:
        """A bucket from its ISO text (``"2025-03-10T14"``, ``"2025-03-10"``)."""
        ...

    # --- SQL fragments: ``Fragments``' methods ---------------------------------------------------
    def money_sum(self, expr: str) -> str: ...
    def ts_day(self, expr: str) -> str: ...
    def ts_month(self, expr: str) -> str: ...
    def hour_bucket(self, expr: str) -> str: ...
    def day_bucket(self, expr: str) -> str: ...
    def bucket_day(self, expr: str) -> str: ...
    def bucket_month(self, expr: str) -> str: ...
    def json_key(self, column: str, key: str) -> tuple[str, Any]: ...
    def key_in(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]: ...

    def legacy_versions(self, session: Session) -> set[str]:
        """Migrations a database made before ``schema_migrations`` existed already has."""
        ...
