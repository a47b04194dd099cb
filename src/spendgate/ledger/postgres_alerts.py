"""Webhooks, budget alerts and their deliveries in PostgreSQL (a mixin of ``PostgresStore``),
with the behaviour of ``sqlite_alerts.py``:

- an alert is unique per (kind, budget, window, threshold): of several replicas recording
  it, the first insert wins and the others do nothing, so each threshold fires once;
- a delivery is sent by whoever holds its lease (``claimed_until``). Claims take the due
  rows ``FOR UPDATE SKIP LOCKED``: replicas claiming at the same moment each get different
  deliveries and never wait on one another; a replica that dies mid-send only delays the
  delivery until its lease runs out.

Alerts and deliveries are operational records and do not bump the config version;
webhooks are configuration and go through ``_write``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import psycopg

from spendgate.alerts.model import Delivery
from spendgate.alerts.rules import WebhookError, check_webhook
from spendgate.ledger.events import format_ts
from spendgate.ledger.store import StoreError

_INSERT_ALERT = (
    "INSERT INTO alerts (id, kind, budget, window_key, threshold, payload, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s::json, %s)"
    " ON CONFLICT (kind, budget, window_key, threshold) DO NOTHING"
)
_FAN_OUT = (
    "INSERT INTO alert_deliveries (alert_id, webhook_id, status, attempts, next_attempt_at)"
    " SELECT %s, id, 'pending', 0, %s FROM webhooks"
)
# Lock the due rows this call can have (skipping any another process is claiming right
# now), lease them, and return them with what sending needs, in one statement.
_CLAIM = """
WITH due AS (
    SELECT alert_id, webhook_id FROM alert_deliveries
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
      AND (claimed_until IS NULL OR claimed_until <= %(now)s)
    ORDER BY next_attempt_at, alert_id, webhook_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE alert_deliveries d SET claimed_until = %(until)s, attempts = d.attempts + 1
    FROM due WHERE d.alert_id = due.alert_id AND d.webhook_id = due.webhook_id
    RETURNING d.alert_id, d.webhook_id, d.attempts, d.next_attempt_at
)
SELECT c.alert_id, c.webhook_id, c.attempts, a.kind, a.payload, w.url, w.secret, w.format
FROM claimed c JOIN alerts a ON a.id = c.alert_id JOIN webhooks w ON w.id = c.webhook_id
ORDER BY c.next_attempt_at, c.alert_id, c.webhook_id
"""


def _webhook_json(row: dict[str, Any], *, with_secret: bool = False) -> dict[str, Any]:
    hook = {
        "id": row["id"],
        "url": row["url"],
        "format": row["format"],
        "has_secret": row["secret"] is not None,
        "created_at": format_ts(row["created_at"]),
    }
    if with_secret:
        hook["secret"] = row["secret"]
    return hook


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


class PostgresAlertsMixin:
    if TYPE_CHECKING:

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
        def _write(
            self,
            statements: Sequence[tuple[str, Sequence[Any]]],
            *,
            duplicate: str | None = None,
            missing: str | None = None,
        ) -> None: ...
        def _transaction(self) -> AbstractContextManager[psycopg.Connection]: ...

    # --- webhooks (configuration) ------------------------------------------------------
    def add_webhook(self, url: str, secret: str | None = None, fmt: str = "json") -> dict[str, Any]:
        try:
            check_webhook(url, fmt)
        except WebhookError as exc:
            raise StoreError(str(exc)) from exc
        duplicate = f"a webhook for {url} already exists"
        if self._query("SELECT 1 FROM webhooks WHERE url = %s", (url,)):
            raise StoreError(duplicate)
        hook_id = f"wh_{secrets.token_hex(5)}"
        self._write(
            [
                (
                    "INSERT INTO webhooks (id, url, secret, format, created_at) VALUES (%s, %s, %s, %s, %s)",
                    (hook_id, url, secret or None, fmt, datetime.now(UTC)),
                )
            ],
            duplicate=duplicate,
        )
        return _webhook_json(self._find_webhook(hook_id))

    def list_webhooks(self) -> list[dict[str, Any]]:
        return [_webhook_json(r) for r in self._query("SELECT * FROM webhooks ORDER BY created_at, id")]

    def webhook(self, id_or_url: str) -> dict[str, Any]:
        return _webhook_json(self._find_webhook(id_or_url), with_secret=True)

    def remove_webhook(self, id_or_url: str) -> dict[str, Any]:
        row = self._find_webhook(id_or_url)
        # Its deliveries go with it (ON DELETE CASCADE): nobody is left to send them to.
        self._write([("DELETE FROM webhooks WHERE id = %s", (row["id"],))])
        return _webhook_json(row)

    def _find_webhook(self, id_or_url: str) -> dict[str, Any]:
        rows = self._query("SELECT * FROM webhooks WHERE id = %s OR url = %s", (id_or_url, id_or_url))
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
        at = now or datetime.now(UTC)
        row = (payload["id"], kind, budget, window_key, threshold, orjson.dumps(payload).decode(), at)
        with self._transaction() as conn:
            if conn.execute(_INSERT_ALERT, row).rowcount != 1:
                return False  # another process (or an earlier call) recorded it first
            # Same transaction: an alert never exists without its deliveries.
            conn.execute(_FAN_OUT, (payload["id"], at))
            return True

    def claim_deliveries(self, now: datetime, limit: int, lease_seconds: float) -> list[Delivery]:
        until = now + timedelta(seconds=lease_seconds)
        with self._transaction() as conn:
            rows = conn.execute(_CLAIM, {"now": now, "until": until, "limit": limit}).fetchall()
        return [
            Delivery(
                alert_id=r["alert_id"],
                webhook_id=r["webhook_id"],
                kind=r["kind"],
                payload=r["payload"],
                url=r["url"],
                secret=r["secret"],
                format=r["format"],
                attempts=r["attempts"],
            )
            for r in rows
        ]

    def delivery_succeeded(self, alert_id: str, webhook_id: str, now: datetime) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE alert_deliveries SET status = 'delivered', delivered_at = %s, claimed_until = NULL,"
                " last_error = NULL WHERE alert_id = %s AND webhook_id = %s",
                (now, alert_id, webhook_id),
            )

    def delivery_failed(
        self, alert_id: str, webhook_id: str, now: datetime, error: str, next_attempt_at: datetime | None
    ) -> None:
        # Only a pending delivery changes: if a lease ran out and another process delivered
        # it meanwhile, this late failure must not undo that.
        if next_attempt_at is None:
            sql = "UPDATE alert_deliveries SET status = 'failed', claimed_until = NULL, last_error = %s"
            params: tuple[Any, ...] = (error,)
        else:
            sql = "UPDATE alert_deliveries SET next_attempt_at = %s, claimed_until = NULL, last_error = %s"
            params = (next_attempt_at, error)
        with self._transaction() as conn:
            conn.execute(
                f"{sql} WHERE alert_id = %s AND webhook_id = %s AND status = 'pending'",
                (*params, alert_id, webhook_id),
            )

    def list_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        alerts = self._query("SELECT * FROM alerts ORDER BY seq DESC LIMIT %s", (limit,))
        deliveries: dict[str, list[dict[str, Any]]] = {a["id"]: [] for a in alerts}
        if alerts:
            for d in self._query(
                "SELECT * FROM alert_deliveries WHERE alert_id = ANY(%s) ORDER BY webhook_id",
                ([a["id"] for a in alerts],),
            ):
                deliveries[d["alert_id"]].append(
                    {
                        "webhook_id": d["webhook_id"],
                        "status": d["status"],
                        "attempts": d["attempts"],
                        "next_attempt_at": _ts(d["next_attempt_at"]) if d["status"] == "pending" else None,
                        "last_error": d["last_error"],
                        "delivered_at": _ts(d["delivered_at"]),
                    }
                )
        return [
            {
                "id": a["id"],
                "kind": a["kind"],
                "budget": a["budget"],
                "window": a["window_key"],
                "threshold": a["threshold"] or None,  # 0 stands for "not a threshold alert"
                "created_at": format_ts(a["created_at"]),
                "payload": a["payload"],
                "deliveries": deliveries[a["id"]],
            }
            for a in alerts
        ]
