"""Schema migrations: one mechanism for both databases.

The migrations are the files of ``store/migrations/`` (package data; what a file may hold is
described there). Each pending one is applied in its own transaction together with its row in
``schema_migrations``, so a failure leaves the schema at the previous version, never half
way. Every such transaction first takes the database's migration lock (SQLite: its write
lock; PostgreSQL: an advisory lock for the schema being migrated): replicas starting together
queue on it, and the second finds the version already recorded and skips it.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.dialect import Dialect, Session

MIGRATIONS_PACKAGE = "spendgate.ledger.store.migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(sqlite|postgresql))?\.(sql|py)$")
_TYPE = re.compile(r"\{([a-z_]+)\}")
_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version {text} PRIMARY KEY, name {text} NOT NULL, applied_at {timestamp} NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    version: str  # "0001"
    name: str  # "initial"
    file: Traversable
    backend: str | None  # None: written once for both

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    def apply(self, session: Session, dialect: Dialect) -> None:
        if self.file.name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"spendgate_migration_{self.label}", Path(str(self.file)))
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.upgrade(session, dialect)
        elif self.backend is None:
            session.script(portable(self.file.read_text(encoding="utf-8"), dialect, self.label))
        else:
            session.script(self.file.read_text(encoding="utf-8"))


def existing_columns(session: Session, dialect: Dialect, table: str) -> set[str]:
    """The columns ``table`` has now: for a ``.py`` migration that adds a column only where it is
    missing (a SQLite ledger rebuilt without ``schema_migrations`` runs every step again)."""
    if dialect.name == "sqlite":
        return {row[1] for row in session.rows(f"PRAGMA table_info({table})")}
    rows = session.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return {row[0] for row in rows}


def portable(sql: str, dialect: Dialect, label: str = "") -> str:
    """A portable file's SQL for one database: each ``{type}`` replaced by the dialect's."""

    def replace(match: re.Match[str]) -> str:
        try:
            return dialect.ddl_types[match[1]]
        except KeyError:
            known = ", ".join(f"{{{name}}}" for name in dialect.ddl_types)
            raise StoreError(f"migration {label}: unknown type {match[0]} (known: {known})") from None

    return _TYPE.sub(replace, sql)


def shipped() -> list[Traversable]:
    return [resources.files(MIGRATIONS_PACKAGE)]


def available(backend: str, folders: Sequence[Traversable] | None = None) -> list[Migration]:
    """Every migration of this backend in ``folders`` (those spendgate ships), in order: for
    each version, its file for this backend, else its file for both."""
    by_version: dict[str, list[Migration]] = {}
    for folder in shipped() if folders is None else folders:
        for entry in folder.iterdir():
            match = _FILE.match(entry.name)
            if match:
                by_version.setdefault(match[1], []).append(Migration(match[1], match[2], entry, match[3]))
    migrations = []
    for version in sorted(by_version):
        files = by_version[version]
        if len({m.name for m in files}) > 1 or len({m.backend for m in files}) < len(files):
            raise StoreError(f"migration {version} has several files: {', '.join(sorted(m.file.name for m in files))}")
        mine = [m for m in files if m.backend == backend] or [m for m in files if m.backend is None]
        if not mine:
            raise StoreError(f"migration {version} has no file for {backend}: {files[0].file.name}")
        migrations.append(mine[0])
    return migrations


def applied(session: Session, dialect: Dialect) -> set[str]:
    """Versions the database already has."""
    if not session.has_table("schema_migrations"):
        return dialect.legacy_versions(session)
    return {row[0] for row in session.rows("SELECT version FROM schema_migrations")}


def pending(session: Session, dialect: Dialect, folders: Sequence[Traversable] | None = None) -> list[Migration]:
    done = applied(session, dialect)
    return [m for m in available(dialect.name, folders) if m.version not in done]


def migrate(session: Session, dialect: Dialect, folders: Sequence[Traversable] | None = None) -> list[str]:
    """Apply pending migrations; the versions this call applied (none when up to date)."""
    todo = pending(session, dialect, folders)  # cheap check first: an up-to-date schema takes no lock
    done: list[str] = []
    for migration in todo:
        with session.migration_lock():
            _ensure_table(session, dialect, available(dialect.name, folders))
            if session.one("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)):
                continue  # another process applied it while we waited for the lock
            migration.apply(session, dialect)
            _record(session, dialect, [migration])
        done.append(migration.version)
    return done


def _ensure_table(session: Session, dialect: Dialect, migrations: Iterable[Migration]) -> None:
    """schema_migrations, with the versions a database made before it existed already has."""
    if session.has_table("schema_migrations"):
        return
    legacy = dialect.legacy_versions(session)
    session.execute(portable(_TABLE, dialect))
    _record(session, dialect, [m for m in migrations if m.version in legacy])


def _record(session: Session, dialect: Dialect, migrations: Sequence[Migration]) -> None:
    now = dialect.ts(datetime.now(UTC))
    for m in migrations:
        session.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", (m.version, m.name, now)
        )
