"""The records alert delivery passes around, and the storage interface it needs.

Every backend (SQLite now, PostgreSQL later) implements :class:`AlertStore`; the alert
center and the dispatcher only ever talk to that interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert to send to one webhook, claimed by this process until its lease ends."""

    alert_id: str
    webhook_id: str
    kind: str
    payload: dict[str, Any]
    url: str
    secret: str | None
    format: str  # json | slack
    attempts: int  # including the one this claim is for


class AlertStore(Protocol):
    def add_webhook(
        self, url: str, secret: str | None = None, fmt: str = "json", team: str | None = None
    ) -> dict[str, Any]: ...
    def list_webhooks(self) -> list[dict[str, Any]]:
        """Without secrets: each has ``has_secret`` instead."""
        ...

    def remove_webhook(self, id_or_url: str) -> dict[str, Any]: ...
    def webhook(self, id_or_url: str) -> dict[str, Any]:
        """One webhook with its secret (as stored: encrypted, see secretbox.py), for sending."""
        ...

    def webhook_secrets(self) -> dict[str, str]:
        """Every stored webhook secret (as stored) by webhook id."""
        ...

    def set_webhook_secrets(self, secrets: dict[str, str], *, expected: dict[str, str]) -> int:
        """Replace stored secrets by webhook id, each only if it still is ``expected[id]``;
        how many were replaced."""
        ...

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
    ) -> bool:
        """Store the alert unless (kind, budget, window_key, threshold) already is, with one
        pending delivery per webhook (per webhook of ``team`` when given); True only when it was new."""
        ...

    def claim_deliveries(self, now: datetime, limit: int, lease_seconds: float) -> list[Delivery]:
        """Due pending deliveries, leased to the caller so no other process sends them."""
        ...

    def delivery_succeeded(self, alert_id: str, webhook_id: str, now: datetime) -> None: ...
    def delivery_failed(
        self, alert_id: str, webhook_id: str, now: datetime, error: str, next_attempt_at: datetime | None
    ) -> None:
        """Retry at ``next_attempt_at``, or give up (status ``failed``) when it is None."""
        ...

    def list_alerts(self, limit: int = 50) -> list[dict[str, Any]]: ...
