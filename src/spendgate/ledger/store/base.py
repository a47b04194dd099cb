"""What every part of the store stands on: its dialect, and the few helpers they share."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from spendgate.ledger.errors import StoreError
from spendgate.ledger.rollups.maintain import RollupWriter
from spendgate.ledger.rollups.plan import utc
from spendgate.ledger.store.dialect import Dialect, Row

# meta: epoch microseconds; raw events before it were deleted by retention.
HORIZON = "raw_events_pruned_before"
# meta: this ledger's identity (a random 63-bit number), see ``ledger_id``.
LEDGER_ID = "ledger_id"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Bumped in the same transaction as every configuration change, so every gateway sharing
# the database notices with one tiny query.
_BUMP = "UPDATE meta SET value = value + 1 WHERE name = 'config_version'"


def micros(ts: datetime) -> int:
    return (utc(ts) - _EPOCH) // timedelta(microseconds=1)


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

    def raw_events_pruned_before(self) -> datetime | None:
        """The retention horizon: raw events before it were deleted (rollups kept)."""
        rows = self._query("SELECT value FROM meta WHERE name = ?", (HORIZON,))
        return _EPOCH + timedelta(microseconds=rows[0][0]) if rows else None

    def ledger_id(self) -> str:
        """This ledger's identity, 16 hex digits: made once, when the database is created (for a
        database older than identities, at the first call), and kept in it. Shared state kept
        elsewhere for this ledger (the Redis budget counters) is named after it, so two ledgers
        never mix theirs; a restored backup or a copy of the database has the same identity."""
        rows = self._query("SELECT value FROM meta WHERE name = ?", (LEDGER_ID,))
        if not rows:
            # Processes racing to make it agree: the first insert wins, everyone reads that one.
            with self._dialect.transaction() as session:
                session.execute(
                    "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                    (LEDGER_ID, secrets.randbits(63)),
                )
            rows = self._query("SELECT value FROM meta WHERE name = ?", (LEDGER_ID,))
        return f"{int(rows[0][0]):016x}"

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
