"""What every part of the store stands on: its dialect, and the few helpers they share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from spendgate.ledger.errors import StoreError
from spendgate.ledger.rollups.maintain import RollupWriter
from spendgate.ledger.store.dialect import Dialect, Row

# Bumped in the same transaction as every configuration change, so every gateway sharing
# the database notices with one tiny query.
_BUMP = "UPDATE meta SET value = value + 1 WHERE name = 'config_version'"


class StoreBase:
    _dialect: Dialect
    _rollups: RollupWriter

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._dialect.session() as session:
            return session.rows(sql, params)

    def _exists(self, table: str, name: str, column: str = "name") -> bool:
        return bool(self._query(f"SELECT 1 FROM {table} WHERE {column} = ?", (name,)))

    def _now(self) -> Any:
        return self._dialect.ts(datetime.now(UTC))

    def _write(
        self,
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        duplicate: str | None = None,
        missing: str | None = None,
    ) -> None:
        """Configuration statements in one transaction that also bumps the config version,
        so every gateway sharing the database notices. ``duplicate``/``missing`` are the
        messages for a race lost to another writer (callers check before writing)."""
        dialect = self._dialect
        try:
            with dialect.transaction() as session:
                for sql, params in statements:
                    session.execute(sql, params)
                session.execute(_BUMP)
        except dialect.integrity_errors as exc:
            kind = dialect.integrity_kind(exc)
            message = duplicate if kind == "unique" else missing if kind == "foreign_key" else None
            raise StoreError(message or dialect.error_message(exc)) from exc
