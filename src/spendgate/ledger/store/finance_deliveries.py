"""Scheduled finance deliveries (``finance_deliveries``): each (kind, period) delivered once
across every replica of ``serve``.

A replica claims a period by taking its lease (``claimed_until``) inside a write transaction, on
a row that is pending, due (``next_attempt_at``) and not leased by anyone else: the row's primary
key makes the first claim of a period create it exactly once, and the conditional UPDATE makes
two claimers race to one winner (SQLite: its write lock serializes them; PostgreSQL: the second
UPDATE waits on the row, then re-reads it and finds the lease taken). A replica that dies
mid-delivery holds the period only until the lease runs out; a failure sets the next attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from spendgate.ledger.store.base import StoreBase

_CREATE = (
    "INSERT INTO finance_deliveries (kind, period, status, attempts, next_attempt_at) VALUES (?, ?, 'pending', 0, ?)"
    " ON CONFLICT (kind, period) DO NOTHING"
)
_CLAIM = (
    "UPDATE finance_deliveries SET claimed_until = ?, attempts = attempts + 1"
    " WHERE kind = ? AND period = ? AND status = 'pending' AND next_attempt_at <= ?"
    " AND (claimed_until IS NULL OR claimed_until <= ?)"
)
_REOPEN = (
    "UPDATE finance_deliveries SET status = 'pending', next_attempt_at = ?, attempts = 0"
    " WHERE kind = ? AND period = ? AND (claimed_until IS NULL OR claimed_until <= ?)"
)


class FinanceDeliveriesMixin(StoreBase):
    def claim_finance_delivery(
        self, kind: str, period: str, now: datetime, lease_seconds: float, *, force: bool = False
    ) -> int | None:
        """The attempt number (1, 2, …) when this caller now holds the lease of ``(kind, period)``;
        None when it is delivered, given up, not due yet or leased by another replica.
        ``force``: a delivered or given-up period is opened again first (unless leased)."""
        d = self._dialect
        at, until = d.ts(now), d.ts(now + timedelta(seconds=lease_seconds))
        with d.transaction() as session:
            session.execute(_CREATE, (kind, period, at))
            if force:
                session.execute(_REOPEN, (at, kind, period, at))
            if session.execute(_CLAIM, (until, kind, period, at, at)).rowcount != 1:
                return None
            row = session.one("SELECT attempts FROM finance_deliveries WHERE kind = ? AND period = ?", (kind, period))
            return int(row[0])

    def finance_delivery_succeeded(self, kind: str, period: str, now: datetime) -> None:
        with self._dialect.transaction() as session:
            session.execute(
                "UPDATE finance_deliveries SET status = 'delivered', delivered_at = ?, claimed_until = NULL,"
                " last_error = NULL WHERE kind = ? AND period = ? AND status = 'pending'",
                (self._dialect.ts(now), kind, period),
            )

    def finance_delivery_failed(self, kind: str, period: str, error: str, next_attempt_at: datetime | None) -> None:
        """A failed attempt: retried from ``next_attempt_at``, or given up (None)."""
        if next_attempt_at is None:
            sql, params = "status = 'failed', claimed_until = NULL, last_error = ?", (error,)
        else:
            sql = "next_attempt_at = ?, claimed_until = NULL, last_error = ?"
            params = (self._dialect.ts(next_attempt_at), error)  # type: ignore[assignment]
        with self._dialect.transaction() as session:
            # Only a pending row: a late failure must not undo another replica's delivery.
            session.execute(
                f"UPDATE finance_deliveries SET {sql} WHERE kind = ? AND period = ? AND status = 'pending'",
                (*params, kind, period),
            )

    def finance_deliveries(self, kind: str | None = None) -> list[dict[str, Any]]:
        d = self._dialect
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self._query(f"SELECT * FROM finance_deliveries {where} ORDER BY period, kind", params)
        return [
            {
                "kind": r["kind"],
                "period": r["period"],
                "status": r["status"],
                "attempts": r["attempts"],
                "next_attempt_at": d.ts_text(r["next_attempt_at"]) if r["status"] == "pending" else None,
                "last_error": r["last_error"],
                "delivered_at": None if r["delivered_at"] is None else d.ts_text(r["delivered_at"]),
            }
            for r in rows
        ]
