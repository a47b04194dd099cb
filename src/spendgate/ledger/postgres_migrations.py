"""Versioned schema migrations for PostgreSQL.

The migrations are the files ``spendgate/ledger/migrations/postgres/NNNN_name.sql``
(package data). Each pending one is applied in its own transaction together with its row in
``schema_migrations``, so a failure leaves the schema at the previous version, never half
way. Every such transaction first takes a transaction-scoped advisory lock for the schema
being migrated: replicas starting together queue on it, and the second finds the version
already recorded and skips it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from spendgate.ledger.store import StoreError

MIGRATIONS_PACKAGE = "spendgate.ledger.migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Two-key advisory lock: a constant for "spendgate migrations" and the schema's name, so
# schemas of one database (tests, several installations) migrate independently.
_LOCK_CLASS = 0x5347_4D31  # "SGM1"

_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version text PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())"
)


@dataclass(frozen=True)
class Migration:
    version: str  # "0001"
    name: str  # "initial"
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def available() -> list[Migration]:
    """Every migration this version of spendgate ships, in order."""
    folder = resources.files(MIGRATIONS_PACKAGE).joinpath("postgres")
    migrations = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            migrations.append(Migration(match[1], match[2], entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two PostgreSQL migrations share a version: {versions}")
    return migrations


def applied(conn: psycopg.Connection) -> set[str]:
    """Versions already applied to the schema the connection's search_path points at."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not _first(row):
        return set()
    return {_first(r) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}


def pending(conn: psycopg.Connection) -> list[Migration]:
    done = applied(conn)
    return [m for m in available() if m.version not in done]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations (``conn`` in autocommit mode); the versions this call applied."""
    todo = pending(conn)  # cheap check first: an up-to-date schema takes no lock
    done: list[str] = []
    for migration in todo:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))", (_LOCK_CLASS,))
            if current_schema(conn) is None:
                raise StoreError("no schema to migrate: the database URL's search_path names no existing schema")
            conn.execute(_CREATE_TABLE)
            row = conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)).fetchone()
            if row is not None:
                continue  # another process applied it while we waited for the lock
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name)
            )
        done.append(migration.version)
    return done


def current_schema(conn: psycopg.Connection) -> str | None:
    return _first(conn.execute("SELECT current_schema()").fetchone())


def _first(row: object) -> object:
    """The first column of a row, whatever the connection's row factory."""
    if row is None:
        return None
    if isinstance(row, dict):
        return next(iter(row.values()))
    return row[0]  # type: ignore[index]
