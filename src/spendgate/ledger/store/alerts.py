"""Webhooks, budget alerts and their deliveries.

The shared database is what makes alerts exact across gateway replicas:

- an alert is unique per (kind, budget, window, threshold), so whichever replica records it
  first wins and every other replica's insert does nothing: each threshold fires once per
  budget period however many processes saw it crossed;
- a delivery is sent by whoever holds its lease (``claimed_until``), taken inside a write
  transaction on rows no other claimer holds (SQLite: its write lock serializes claimers;
  PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so claimers never wait on one another), so two
  replicas never send the same delivery at once, and a replica that dies mid-send only delays
  it until the lease runs out.

Alerts and deliveries are operational records, not configuration: writing them does not
bump the config version (that would make every gateway reload its directory). Webhooks are
configuration and go through ``_write``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from spendgate.alerts.model import Delivery
from spendgate.alerts.rules import WebhookError, check_webhook
from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row

_INSERT_ALERT = (
    "INSERT INTO alerts (id, kind, budget, window_key, threshold, payload, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (kind, budget, window_key, threshold) DO NOTHING"
)
_FAN_OUT = (
    "INSERT INTO alert_deliveries (alert_id, webhook_id, status, attempts, next_attempt_at)"
    " SELECT ?, id, 'pending', 0, ? FROM webhooks"
)


def fan_out(session: Any, alert_id: str, at: Any, team: str | None = None, *, team_only: bool = False) -> None:
    """An alert's deliveries, in the transaction that records it (an alert never exists without
    them). Who hears it: the org's webhooks (no team) always, plus ``team``'s webhooks when the
    alert concerns that team; ``team_only``: that team's webhooks alone (its weekly summary).
    A team's webhook never hears about another team's spend."""
    if team is None:
        session.execute(_FAN_OUT + " WHERE team IS NULL", (alert_id, at))
    elif team_only:
        session.execute(_FAN_OUT + " WHERE team = ?", (alert_id, at, team))
    else:
        session.execute(_FAN_OUT + " WHERE team IS NULL OR team = ?", (alert_id, at, team))


_DUE = (
    "SELECT d.alert_id, d.webhook_id, d.attempts, a.kind, a.payload, w.url, w.secret, w.format"
    " FROM alert_deliveries d"
    " JOIN alerts a ON a.id = d.alert_id"
    " JOIN webhooks w ON w.id = d.webhook_id"
    " WHERE d.status = 'pending' AND d.next_attempt_at <= ?"
    " AND (d.claimed_until IS NULL OR d.claimed_until <= ?)"
    " ORDER BY d.next_attempt_at, d.alert_id, d.webhook_id LIMIT ?"
)
_CLAIM = "UPDATE alert_deliveries SET claimed_until = ?, attempts = attempts + 1 WHERE alert_id = ? AND webhook_id = ?"


class AlertsMixin(StoreBase):
    def _webhook_json(self, row: Row, *, with_secret: bool = False) -> dict[str, Any]:
        hook = {
            "id": row["id"],
            "url": row["url"],
            "format": row["format"],
            "team": row["team"],  # its team's weekly summary goes to it (finance/weekly.py)
            "has_secret": row["secret"] is not None,
            "created_at": self._dialect.ts_text(row["created_at"]),
        }
        if with_secret:
            hook["secret"] = row["secret"]
        return hook

    # --- webhooks (configuration) ------------------------------------------------------
    def add_webhook(
        self, url: str, secret: str | None = None, fmt: str = "json", team: str | None = None
    ) -> dict[str, Any]:
        try:
            check_webhook(url, fmt)
        except WebhookError as exc:
            raise StoreError(str(exc)) from exc
        if team is not None and not self._exists("teams", team):
            raise StoreError(f"unknown team {team!r}; see `spendgate teams list`")
        duplicate = f"a webhook for {url} already exists"
        if self._exists("webhooks", url, column="url"):
            raise StoreError(duplicate)
        hook_id = f"wh_{secrets.token_hex(5)}"
        self._write(
            [
                (
                    "INSERT INTO webhooks (id, url, secret, format, team, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (hook_id, url, secret or None, fmt, team, self._now()),
                )
            ],
            duplicate=duplicate,
        )
        return self._webhook_json(self._find_webhook(hook_id))

    def list_webhooks(self) -> list[dict[str, Any]]:
        return [self._webhook_json(r) for r in self._query("SELECT * FROM webhooks ORDER BY created_at, id")]

    def webhook(self, id_or_url: str) -> dict[str, Any]:
        return self._webhook_json(self._find_webhook(id_or_url), with_secret=True)

    def webhook_secrets(self) -> dict[str, str]:
        return {r["id"]: r["secret"] for r in self._query("SELECT id, secret FROM webhooks WHERE secret IS NOT NULL")}

    def set_webhook_secrets(self, secrets: dict[str, str], *, expected: dict[str, str]) -> int:
        # Compare-and-set: a secret changed meanwhile (by another rekey) is left as it is.
        changed = 0
        with self._dialect.transaction() as session:
            for hook_id, stored in secrets.items():
                changed += session.execute(
                    "UPDATE webhooks SET secret = ? WHERE id = ? AND secret = ?", (stored, hook_id, expected[hook_id])
                ).rowcount
        return changed

    def remove_webhook(self, id_or_url: str) -> dict[str, Any]:
        row = self._find_webhook(id_or_url)
        # Its deliveries go with it (ON DELETE CASCADE): nobody is left to send them to.
        self._write([("DELETE FROM webhooks WHERE id = ?", (row["id"],))])
        return self._webhook_json(row)

    def _find_webhook(self, id_or_url: str) -> Row:
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
        team: str | None = None,
        team_only: bool = False,
    ) -> bool:
        """Delivered to the org's webhooks and ``team``'s (``team_only``: to ``team``'s alone);
        see :func:`fan_out`."""
        at = self._dialect.ts(now or datetime.now(UTC))
        # The payload is kept byte for byte (PostgreSQL: json, not jsonb), keys in their order.
        row = (payload["id"], kind, budget, window_key, threshold, orjson.dumps(payload).decode(), at)
        with self._dialect.transaction() as session:
            if session.execute(_INSERT_ALERT, row).rowcount != 1:
                return False  # another process (or an earlier call) recorded it first
            fan_out(session, payload["id"], at, team, team_only=team_only)
            return True

    def claim_deliveries(self, now: datetime, limit: int, lease_seconds: float) -> list[Delivery]:
        d = self._dialect
        at, until = d.ts(now), d.ts(now + timedelta(seconds=lease_seconds))
        with d.transaction() as session:
            due = session.rows(_DUE + d.skip_locked, (at, at, limit))
            if due:
                session.executemany(_CLAIM, [(until, r["alert_id"], r["webhook_id"]) for r in due])
        return [
            Delivery(
                alert_id=r["alert_id"],
                webhook_id=r["webhook_id"],
                kind=r["kind"],
                payload=d.json_value(r["payload"]),
                url=r["url"],
                secret=r["secret"],
                format=r["format"],
                attempts=r["attempts"] + 1,
            )
            for r in due
        ]

    def delivery_succeeded(self, alert_id: str, webhook_id: str, now: datetime) -> None:
        with self._dialect.transaction() as session:
            session.execute(
                "UPDATE alert_deliveries SET status = 'delivered', delivered_at = ?, claimed_until = NULL,"
                " last_error = NULL WHERE alert_id = ? AND webhook_id = ?",
                (self._dialect.ts(now), alert_id, webhook_id),
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
            params = (self._dialect.ts(next_attempt_at), error)
        with self._dialect.transaction() as session:
            session.execute(
                f"{sql} WHERE alert_id = ? AND webhook_id = ? AND status = 'pending'",
                (*params, alert_id, webhook_id),
            )

    def list_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        d = self._dialect
        alerts = self._query("SELECT * FROM alerts ORDER BY seq DESC LIMIT ?", (limit,))
        deliveries: dict[str, list[dict[str, Any]]] = {a["id"]: [] for a in alerts}
        if alerts:
            for r in self._query(
                "SELECT d.* FROM alert_deliveries d JOIN (SELECT id FROM alerts ORDER BY seq DESC LIMIT ?) a"
                " ON a.id = d.alert_id ORDER BY d.webhook_id",
                (limit,),
            ):
                if r["alert_id"] not in deliveries:
                    continue  # an alert recorded since the first read
                deliveries[r["alert_id"]].append(
                    {
                        "webhook_id": r["webhook_id"],
                        "status": r["status"],
                        "attempts": r["attempts"],
                        "next_attempt_at": d.ts_text(r["next_attempt_at"]) if r["status"] == "pending" else None,
                        "last_error": r["last_error"],
                        "delivered_at": None if r["delivered_at"] is None else d.ts_text(r["delivered_at"]),
                    }
                )
        return [
            {
                "id": a["id"],
                "kind": a["kind"],
                "budget": a["budget"],
                "window": a["window_key"],
                "threshold": a["threshold"] or None,  # 0 stands for "not a threshold alert"
                "created_at": d.ts_text(a["created_at"]),
                "payload": d.json_value(a["payload"]),
                "deliveries": deliveries[a["id"]],
            }
            for a in alerts
        ]
