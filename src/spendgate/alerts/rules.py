"""What budget alerts say and when they are due (pure: no clock, no I/O, no database).

Three alert kinds come from budgets:

- ``budget.threshold_crossed``: spend reached one of the budget's ``alert_at`` percentages;
- ``budget.forecast_overrun``: the weekday-aware forecast (``budgets/forecast.py``) says the
  window will end over its effective limit (the budget's plus extra spend approved for the
  window);
- ``budget.exhausted``: a blocking budget is spent: its spend reached the limit, or it refused a
  request because what is left is less than any request costs (see ``crossed_thresholds``).

Each is a JSON object posted to every webhook. Money is an exact decimal string and every
instant is ISO-8601 UTC. A webhook with a secret receives a signature as Stripe sends it:
``x-spendgate-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``. The
timestamp is signed with the body, so a receiver that also refuses a ``t`` more than
``SIGNATURE_TOLERANCE_S`` away from its clock cannot be fed a recorded request again later
(:func:`verify_signature` does both; the README has the same check for receivers).

Each alert has a unique ``id``, the same on every retry of its delivery, so a receiver
that may see a retry of a POST it already handled can drop the duplicate by id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from spendgate.budgets.forecast import Forecast, forecast_window
from spendgate.budgets.model import Budget
from spendgate.budgets.projection import projected_spend
from spendgate.budgets.windows import Window, iso_utc
from spendgate.money import format_usd
from spendgate.redact import redact_url

THRESHOLD_CROSSED = "budget.threshold_crossed"
FORECAST_OVERRUN = "budget.forecast_overrun"
EXHAUSTED = "budget.exhausted"
WEBHOOK_TEST = "webhook.test"
WEBHOOK_FORMATS = ("json", "slack")
ZERO = Decimal(0)
SIGNATURE_HEADER = "x-spendgate-signature"
# How far a signature's timestamp may be from the receiver's clock (the replay window).
SIGNATURE_TOLERANCE_S = 300


class WebhookError(ValueError):
    """A webhook that cannot be configured as asked."""


# --- when alerts are due ----------------------------------------------------------------
def crossed_thresholds(budget: Budget, spent: Decimal, *, exhausted: bool = False) -> list[int]:
    """Every ``alert_at`` percentage that ``spent`` has reached, lowest first. An ``exhausted``
    budget has reached 100% whatever its spend: reservations refuse the requests that would take
    it there, so its spend stops just short of the limit."""
    # spent >= limit * pct / 100, multiplied out so no division can round.
    return [
        pct for pct in sorted(budget.alert_at) if (exhausted and pct <= 100) or spent * 100 >= budget.limit_usd * pct
    ]


def forecast_overrun(
    budget: Budget,
    window: Window,
    spent: Decimal,
    now: datetime,
    history: Mapping[date, Decimal] | None = None,
    *,
    approved_extra: Decimal = ZERO,
) -> Forecast | None:
    """The window's weekday-aware forecast when its projection passes the effective limit
    (``budget.limit_usd + approved_extra``), else None. ``history``: the scope's daily spend
    (UTC days) before today. Without any, the forecast is the window's own burn rate, which
    says nothing before both 5% of the window and an hour of it have gone by (the linear
    projection's rule: an hour into a month, $10 would "project" to $7,200)."""
    today = now.astimezone(UTC).date()
    known = any(cost for day, cost in (history or {}).items() if day < today)
    if not known and projected_spend(spent, window, now) is None:
        return None
    limit = budget.limit_usd + approved_extra
    forecast = forecast_window(history or {}, spent, window, "UTC", now, limit=limit)
    return forecast if forecast is not None and forecast.overrun(limit) is not None else None


# --- what alerts say --------------------------------------------------------------------
def new_alert_id(now: datetime) -> str:
    """Time-ordered (48-bit milliseconds, then 64 random bits), so ids sort like alerts."""
    return f"alrt_{int(now.timestamp() * 1000):012x}{os.urandom(8).hex()}"


def budget_json(budget: Budget, window: Window, approved_extra: Decimal = ZERO) -> dict[str, Any]:
    return {
        "name": budget.name,
        "scope": str(budget.scope),
        "limit_usd": format_usd(budget.limit_usd),
        # Extra spend an approver granted this window (store/approvals.py), and the limit it makes.
        "approved_extra_usd": format_usd(approved_extra),
        "effective_limit_usd": format_usd(budget.limit_usd + approved_extra),
        "period": budget.period,
        "window": window.key,
        "period_start": iso_utc(window.start),
        "period_end": iso_utc(window.end),
        "timezone": budget.timezone,
        "soft": budget.soft,
    }


def _envelope(event: str, alert_id: str, at: datetime) -> dict[str, Any]:
    return {"event": event, "id": alert_id, "at": iso_utc(at)}


def threshold_payload(
    budget: Budget,
    window: Window,
    threshold: int,
    spent: Decimal,
    *,
    at: datetime,
    alert_id: str,
    approved_extra: Decimal = ZERO,
) -> dict[str, Any]:
    return {
        **_envelope(THRESHOLD_CROSSED, alert_id, at),
        "budget": budget_json(budget, window, approved_extra),
        "threshold": threshold,
        "threshold_usd": format_usd(budget.limit_usd * threshold / 100),
        "spent_usd": format_usd(spent),
    }


def forecast_payload(
    budget: Budget,
    window: Window,
    spent: Decimal,
    projected: Decimal,
    *,
    at: datetime,
    alert_id: str,
    approved_extra: Decimal = ZERO,
    forecast: Forecast | None = None,
) -> dict[str, Any]:
    """``forecast``: the weekday-aware forecast behind ``projected``, for its interval and
    run-out day."""
    payload = {
        **_envelope(FORECAST_OVERRUN, alert_id, at),
        "budget": budget_json(budget, window, approved_extra),
        "spent_usd": format_usd(spent),
        "projected_usd": format_usd(projected),
    }
    if forecast is not None:
        payload["low_usd"] = format_usd(forecast.low_usd)
        payload["high_usd"] = format_usd(forecast.high_usd)
        payload["runs_out_on"] = forecast.runs_out_on.isoformat() if forecast.runs_out_on else None
    return payload


def exhausted_payload(
    budget: Budget,
    window: Window,
    spent: Decimal,
    reserved: Decimal,
    *,
    at: datetime,
    alert_id: str,
    approved_extra: Decimal = ZERO,
) -> dict[str, Any]:
    return {
        **_envelope(EXHAUSTED, alert_id, at),
        "budget": budget_json(budget, window, approved_extra),
        "spent_usd": format_usd(spent),
        "reserved_usd": format_usd(reserved),
    }


def webhook_test_payload(webhook_id: str, *, at: datetime, alert_id: str) -> dict[str, Any]:
    return {
        **_envelope(WEBHOOK_TEST, alert_id, at),
        "webhook": webhook_id,
        "message": "Test from spendgate: this webhook receives budget alerts.",
    }


def summary(payload: dict[str, Any]) -> str:
    """One line a person reads in a chat channel."""
    event = payload.get("event")
    if event == WEBHOOK_TEST:
        return "spendgate webhook test: this webhook receives budget alerts."
    if event == "reconcile.drift":  # reconcile/drift.py
        return (
            f"{payload.get('provider')} billed ${payload.get('total_provider_usd')} for {payload.get('since')},"
            f" the ledger holds ${payload.get('total_ledger_usd')}: drift {payload.get('drift_percent')}%"
            f" (threshold {payload.get('threshold_percent')}%, unseen by the gateway ${payload.get('unseen_usd')})."
        )
    if event == "finance.weekly_summary":  # finance/weekly.py
        changes = "; ".join(
            f"{c.get('dimension')} {c.get('value') or '(none)'} {c.get('change_usd')}"
            for c in payload.get("top_changes", [])
        )
        return (
            f"Team {payload.get('team')} spent ${payload.get('cost_usd')} in {payload.get('week')}"
            f" (week before: ${payload.get('previous_week_cost_usd')}). Largest changes: {changes or 'none'}."
        )
    budget = payload.get("budget", {})
    who = f"Budget {budget.get('name')} ({budget.get('scope')})"
    limit = f"${budget.get('effective_limit_usd') or budget.get('limit_usd')}"
    period = budget.get("period")
    since = f" since {budget['period_start']}" if budget.get("period_start") else ""
    if event == THRESHOLD_CROSSED:
        return f"{who} crossed {payload['threshold']}%: ${payload['spent_usd']} spent of {limit} ({period}{since})."
    if event == FORECAST_OVERRUN:
        return (
            f"{who} is on track to spend ${payload['projected_usd']} this {period}, over its {limit} limit"
            f" (${payload['spent_usd']} spent{since})."
        )
    if event == EXHAUSTED:
        return (
            f"{who} is exhausted and refusing requests: ${payload['spent_usd']} spent"
            f" + ${payload['reserved_usd']} in flight of {limit} ({period}{since})."
        )
    return f"spendgate alert {event}."


def _mrkdwn_escape(text: str) -> str:
    # Slack reads &, < and > as markup; scope values (customer ids, tags) are free text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` for notifications, ``blocks`` for display."""
    line = summary(payload)
    context = f"{payload.get('event')} · alert {payload.get('id')} · {payload.get('at')}"
    return {
        "text": line,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn_escape(line)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn_escape(context)}]},
        ],
    }


# --- webhooks -----------------------------------------------------------------------------
def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secret: str, timestamp: int) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``, over the exact body bytes."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    header: str, body: bytes, secret: str, *, now: float, tolerance: float = SIGNATURE_TOLERANCE_S
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` at a time within ``tolerance``
    seconds of ``now`` (any of several ``v1`` values may match, as when a secret rotates)."""
    timestamp, macs = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            macs.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    # Every candidate is compared (constant time each), so the answer takes as long either way.
    return any([hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace")) for mac in macs])


def check_webhook(url: str, fmt: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"bad webhook URL {redact_url(url)!r}: use http(s)://host/path")
    if fmt not in WEBHOOK_FORMATS:
        raise WebhookError(f"bad webhook format {fmt!r}: one of {', '.join(WEBHOOK_FORMATS)}")


def retry_delay(attempt: int, base: float = 2.0, cap: float = 600.0) -> float:
    """Seconds before retrying after failed attempt number ``attempt`` (1, 2, …): 2, 4, 8…"""
    # The exponent is bounded so a long-failing delivery cannot overflow the float.
    return min(base * 2 ** min(max(attempt - 1, 0), 32), cap)
