"""Approvals: extra spend granted to an exhausted budget window, by a person, with a reason.

A request refused by an exhausted ``on_exhausted = approve`` budget opens (or finds) the
window's one pending approval. Deciding is configuration: it goes through ``_write`` so every
gateway reloads its rules, whose ``extras`` raise that window's limit by what was granted.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row
from spendgate.money import format_usd

PENDING, APPROVED, DENIED = "pending", "approved", "denied"


# Bounds on what an approver types: a budget's extra is a money figure like its limit, and the
# reason is a sentence the finance report shows.
MAX_EXTRA_USD = Decimal(1_000_000_000)
MAX_REASON_CHARS = 1000
MAX_DECIDED_BY_CHARS = 200  # a user name or whatever the CLI's --by says


class ApprovalsMixin(StoreBase):
    def request_approval(self, budget: str, window_key: str, scope: str, now: datetime) -> dict[str, Any]:
        """The window's pending approval, opened now if there is none (racing replicas: one)."""
        d = self._dialect
        with d.transaction() as session:
            session.execute(
                "INSERT INTO approvals (id, budget, window_key, scope, status, requested_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING",
                (f"apr_{secrets.token_hex(6)}", budget, window_key, scope, d.ts(now)),
            )
        rows = self._query(
            "SELECT * FROM approvals WHERE budget = ? AND window_key = ? AND status = 'pending'", (budget, window_key)
        )
        if not rows:  # decided between the insert and the read: ask again on the next request
            raise StoreError("the approval was decided meanwhile")
        return self._approval_json(rows[0])

    def _approval_json(self, row: Row) -> dict[str, Any]:
        d = self._dialect
        return {
            "id": row["id"],
            "budget": row["budget"],
            "window": row["window_key"],
            "scope": row["scope"],
            "status": row["status"],
            "extra_usd": None if row["extra_usd"] is None else format_usd(d.money_value(row["extra_usd"])),
            "reason": row["reason"],
            "requested_at": d.ts_text(row["requested_at"]),
            "decided_at": None if row["decided_at"] is None else d.ts_text(row["decided_at"]),
            "decided_by": row["decided_by"],
        }

    def list_approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        where, params = ("", ()) if status is None else (" WHERE status = ?", (status,))
        rows = self._query(f"SELECT * FROM approvals{where} ORDER BY requested_at, id", params)
        return [self._approval_json(r) for r in rows]

    def decide_approval(
        self,
        approval_id: str,
        status: str,
        now: datetime,
        *,
        extra: Decimal | None = None,
        reason: str | None = None,
        decided_by: str | None = None,
    ) -> dict[str, Any]:
        if status == APPROVED and (extra is None or not extra.is_finite() or not 0 < extra <= MAX_EXTRA_USD):
            raise StoreError(f"--extra must be a dollar amount above zero and at most {MAX_EXTRA_USD:,}")
        if reason is not None and len(reason) > MAX_REASON_CHARS:
            raise StoreError(f"the reason is longer than {MAX_REASON_CHARS} characters")
        if decided_by is not None and len(decided_by) > MAX_DECIDED_BY_CHARS:
            raise StoreError(f"who decided is longer than {MAX_DECIDED_BY_CHARS} characters")
        rows = self._query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if not rows:
            raise StoreError(f"unknown approval {approval_id!r}; see `spendgate approvals list`")
        if rows[0]["status"] != PENDING:
            raise StoreError(f"approval {approval_id} is already {rows[0]['status']}")
        d = self._dialect
        money = None if extra is None else d.money(extra)
        self._write(
            [
                (
                    "UPDATE approvals SET status = ?, extra_usd = ?, reason = ?, decided_at = ?, decided_by = ?"
                    " WHERE id = ? AND status = 'pending'",
                    (status, money, reason, d.ts(now), decided_by, approval_id),
                )
            ]
        )
        return self._approval_json(self._query("SELECT * FROM approvals WHERE id = ?", (approval_id,))[0])

    def approvals_decided(self, status: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Approvals of ``status`` decided in [start, end) (the finance report's month)."""
        d = self._dialect
        rows = self._query(
            "SELECT * FROM approvals WHERE status = ? AND decided_at >= ? AND decided_at < ? ORDER BY decided_at, id",
            (status, d.ts(start), d.ts(end)),
        )
        return [self._approval_json(r) for r in rows]

    def approved_extras(self) -> dict[str, Decimal]:
        """Extra spend granted, by ``budget@window`` (what ``Rules.extras`` holds)."""
        d = self._dialect
        extras: dict[str, Decimal] = {}
        for row in self._query("SELECT budget, window_key, extra_usd FROM approvals WHERE status = 'approved'"):
            key = f"{row['budget']}@{row['window_key']}"
            extras[key] = extras.get(key, Decimal(0)) + d.money_value(row["extra_usd"])
        return extras
