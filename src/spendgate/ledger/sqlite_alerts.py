"""Webhooks, budget alerts and their deliveries in SQLite (a mixin of ``SQLiteStore``).

The shared database is what makes alerts exact across gateway replicas:

- an alert is unique per (kind, budget, window, threshold), so whichever replica records
  it first wins and every other replica's insert does nothing: each threshold fires once
  per budget period however many processes saw it crossed;
- a delivery is sent by whoever holds its lease (``claimed_until``), taken inside a write
  transaction, so two replicas never send the same delivery at once, and a replica that
  dies mid-send only delays it until the lease runs out.

Alerts and deliveries are operational records, not configuration: writing them does not
bump the config version (that would make every gateway reload its directory). Webhooks are
configuration and go through ``_write``. SQL stays close to what PostgreSQL accepts
(``ON CONFLICT … DO NOTHING``, ISO-8601 UTC text timestamps that sort as time).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from spendgate.alerts.model import Delivery
from spendgate.alerts.rules import WebhookError, check_webhook
from spendgate.ledger.events import format_ts
from spendgate.ledger.store import StoreError

ALERTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    secret TEXT,
    format TEXT NOT NULL CHECK (format IN ('json', 'slack')),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,  -- insertion order: ids made in the same millisecond do not sort
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    budget TEXT NOT NULL,
    window_key TEXT NOT NULL,
    threshold INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (kind, budget, window_key, threshold)
);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_until TEXT,
    last_error TEXT,
    delivered_at TEXT,
    PRIMARY KEY (alert_id, webhook_id)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS alert_deliveries_webhook ON alert_deliveries (webhook_id);
"""

_INSERT_ALERT = (
    "INSERT INTO alerts (id, kind, budget, window_key, threshold, payload, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (kind, budget, window_key, threshold) DO NOTHING"
)
_FAN_OUT = (
    "INSERT INTO alert_deliveries (alert_id, webhook_id, status, attempts, next_attempt_at)"
    " SELECT ?, id, 'pending', 0, ? FROM webhooks"
)
_DUE = (
    "SELECT d.alert_id, d.webhook_id, d.attempts, a.kind, a.payload, w.url, w.secret, w.format"
    " FROM alert_deliveries d"
    " JOIN alerts a ON a.id = d.alert_id"
    " JOIN webhooks w ON w.id = d.webhook_id"
    " WHERE d.status = 'pending' AND d.next_attempt_at <= ?"
    " AND (d.claimed_until IS NULL OR d.claimed_until <= ?)"
    " ORDER BY d.next_attempt_at, d.alert_id, d.webhook_id LIMIT ?"
)


def _webhook_json(row: sqlite3.Row, *, with_secret: bool = False) -> dict[str, Any]:
    hook = {
        "id": row["id"],
        "url": row["url"],
        "format": row["format"],
        "has_secret": row["secret"] is not None,
        "created_at": row["created_at"],
    }
    if with_secret:
        hook["secret"] = row["secret"]
    return hook


class SQLiteAlertsMixin:
    # Provided by SQLiteStore, which this class is mixed into.
    _conn: sqlite3.Connection
    _lock: threading.Lock

    if TYPE_CHECKING:

        def _write(self, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> None: ...
        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

    @contextmanager
    def _operational(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that leaves the config version alone. IMMEDIATE takes the
        database's write lock up front, which is what serializes replicas' claims."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # --- webhooks (configuration) ------------------------------------------------------
    def add_webhook(self, url: str, secret: str | None = None, fmt: str = "json") -> dict[str, Any]:
        try:
            check_webhook(url, fmt)
        except WebhookError as exc:
            raise StoreError(str(exc)) from exc
        if self._query("SELECT 1 FROM webhooks WHERE url = ?", (url,)):
            raise StoreError(f"a webhook for {url} already exists")
        hook_id = f"wh_{secrets.token_hex(5)}"
        self._write(
            [
                (
                    "INSERT INTO webhooks (id, url, secret, format, created_at) VALUES (?, ?, ?, ?, ?)",
                    (hook_id, url, secret or None, fmt, format_ts(datetime.now(UTC))),
                )
            ]
        )
        return _webhook_json(self._find_webhook(hook_id))

    def list_webhooks(self) -> list[dict[str, Any]]:
        return [_webhook_json(r) for r in self._query("SELECT * FROM webhooks ORDER BY created_at, id")]

    def webhook(self, id_or_url: str) -> dict[str, Any]:
        return _webhook_json(self._find_webhook(id_or_url), with_secret=True)

    def remove_webhook(self, id_or_url: str) -> dict[str, Any]:
        row = self._find_webhook(id_or_url)
        # Its deliveries go with it (ON DELETE CASCADE): nobody is left to send them to.
        self._write([("DELETE FROM webhooks WHERE id = ?", (row["id"],))])
        return _webhook_json(row)

    def _find_webhook(self, id_or_url: str) -> sqlite3.Row:
        rows = self._query("SELECT * FROM webhooks WHERE id = ? OR url = ?", (id_or_url, id_or_url))
        if not rows:
            raise StoreError(f"unknown webhook {id_or_url!r}; see `spendgate webhooks list`")
        return rows[0]

    # --- alerts and deliveries (operational) ---------------------------------------------
    def record_alert(
        self,
        kind: str,
        budget: str,
        window_key: str,
        threshold: int,
        payload: dict[str, Any],
        *,
        now: datetime | None = None,
    ) -> bool:
        at = format_ts(now or datetime.now(UTC))
        row = (payload["id"], kind, budget, window_key, threshold, orjson.dumps(payload).decode(), at)
        with self._operational() as conn:
            if conn.execute(_INSERT_ALERT, row).rowcount != 1:
                return False  # another process (or an earlier call) recorded it first
            # Same transaction: an alert never exists without its deliveries.
            conn.execute(_FAN_OUT, (payload["id"], at))
            return True

    def claim_deliveries(self, now: datetime, limit: int, lease_seconds: float) -> list[Delivery]:
        at = format_ts(now)
        until = format_ts(now + timedelta(seconds=lease_seconds))
        with self._operational() as conn:
            rows = conn.execute(_DUE, (at, at, limit)).fetchall()
            conn.executemany(
                "UPDATE alert_deliveries SET claimed_until = ?, attempts = attempts + 1"
                " WHERE alert_id = ? AND webhook_id = ?",
                [(until, r["alert_id"], r["webhook_id"]) for r in rows],
            )
        return [
            Delivery(
                alert_id=r["alert_id"],
                webhook_id=r["webhook_id"],
                kind=r["kind"],
                payload=orjson.loads(r["payload"]),
                url=r["url"],
                secret=r["secret"],
                format=r["format"],
                attempts=r["attempts"] + 1,
            )
            for r in rows
        ]

    def delivery_succeeded(self, alert_id: str, webhook_id: str, now: datetime) -> None:
        with self._operational() as conn:
            conn.execute(
                "UPDATE alert_deliveries SET status = 'delivered', delivered_at = ?, claimed_until = NULL,"
                " last_error = NULL WHERE alert_id = ? AND webhook_id = ?",
                (format_ts(now), alert_id, webhook_id),
            )

    def delivery_failed(
        self, alert_id: str, webhook_id: str, now: datetime, error: str, next_attempt_at: datetime | None
    ) -> None:
        # Only a pending delivery changes: if a lease ran out and another process delivered
        # it meanwhile, this late failure must not undo that.
        if next_attempt_at is None:
            sql = "UPDATE alert_deliveries SET status = 'failed', claimed_until = NULL, last_error = ?"
            params: tuple[Any, ...] = (error,)
        else:
            sql = "UPDATE alert_deliveries SET next_attempt_at = ?, claimed_until = NULL, last_error = ?"
            params = (format_ts(next_attempt_at), error)
        with self._operational() as conn:
            conn.execute(
                f"{sql} WHERE alert_id = ? AND webhook_id = ? AND status = 'pending'",
                (*params, alert_id, webhook_id),
            )

    def list_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        alerts = self._query("SELECT * FROM alerts ORDER BY seq DESC LIMIT ?", (limit,))
        deliveries: dict[str, list[dict[str, Any]]] = {a["id"]: [] for a in alerts}
        if alerts:
            marks = ", ".join("?" for _ in alerts)
            for d in self._query(
                f"SELECT * FROM alert_deliveries WHERE alert_id IN ({marks}) ORDER BY webhook_id",
                [a["id"] for a in alerts],
            ):
                deliveries[d["alert_id"]].append(
                    {
                        "webhook_id": d["webhook_id"],
                        "status": d["status"],
                        "attempts": d["attempts"],
                        "next_attempt_at": d["next_attempt_at"] if d["status"] == "pending" else None,
                        "last_error": d["last_error"],
                        "delivered_at": d["delivered_at"],
                    }
                )
        return [
            {
                "id": a["id"],
                "kind": a["kind"],
                "budget": a["budget"],
                "window": a["window_key"],
                "threshold": a["threshold"] or None,  # 0 stands for "not a threshold alert"
                "created_at": a["created_at"],
                "payload": orjson.loads(a["payload"]),
                "deliveries": deliveries[a["id"]],
            }
            for a in alerts
        ]
