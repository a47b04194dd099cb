"""The pure alert rules: thresholds, projections, payloads, Slack text, signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from spendgate.alerts.center import Observation, alerts_due
from spendgate.alerts.rules import (
    EXHAUSTED,
    FORECAST_OVERRUN,
    THRESHOLD_CROSSED,
    WebhookError,
    check_webhook,
    crossed_thresholds,
    exhausted_payload,
    forecast_overrun,
    forecast_payload,
    retry_delay,
    signature_header,
    slack_body,
    threshold_payload,
    verify_signature,
    webhook_test_payload,
)
from spendgate.budgets.model import Scope
from spendgate.budgets.projection import projected_spend
from spendgate.budgets.windows import Window, window_for
from tests.test_alerts_support import NOW, budget

D = Decimal
NOV = window_for("month", "UTC", NOW)  # 2026-11, 30 days
DAY = window_for("day", "UTC", NOW)


# --- thresholds ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spent", "crossed"),
    [
        ("0", []),
        ("49.999999", []),
        ("50", [50]),
        ("79.99", [50]),
        ("80", [50, 80]),
        ("100", [50, 80, 100]),
        ("250", [50, 80, 100]),
    ],
)
def test_thresholds_reached_include_the_exact_boundary(spent: str, crossed: list[int]) -> None:
    assert crossed_thresholds(budget(limit="100"), D(spent)) == crossed


def test_thresholds_are_exact_for_tiny_limits_and_sorted() -> None:
    tiny = budget(limit="0.03", alert_at=(100, 50, 150))
    assert crossed_thresholds(tiny, D("0.0149999999")) == []
    assert crossed_thresholds(tiny, D("0.015")) == [50]
    assert crossed_thresholds(tiny, D("0.045")) == [50, 100, 150]
    assert crossed_thresholds(budget(alert_at=()), D("1000")) == []


# --- projections --------------------------------------------------------------------------
def test_no_projection_for_a_lifetime_budget() -> None:
    total = window_for("total", "UTC", NOW)
    assert projected_spend(D("99"), total, NOW) is None
    assert forecast_overrun(budget(period="total"), total, D("99"), NOW) is None


def test_no_projection_at_the_start_of_a_period() -> None:
    start = NOV.start
    assert start is not None
    # Half an hour, then a whole day, into a month: under 5% of it, so no projection yet.
    assert projected_spend(D("10"), NOV, start + timedelta(minutes=30)) is None
    assert projected_spend(D("10"), NOV, start + timedelta(days=1)) is None
    # 5% of a 30-day month is 36 hours: from then on, a linear projection.
    assert projected_spend(D("10"), NOV, start + timedelta(hours=36)) == D("200")
    # Before the window (a late clock) there is nothing to project from.
    assert projected_spend(D("10"), NOV, start - timedelta(hours=5)) is None


def test_a_projection_also_needs_an_hour_behind_it() -> None:
    start = datetime(2026, 11, 10, tzinfo=UTC)
    short = Window("ten-hours", start, start + timedelta(hours=10))  # 5% of it is 30 minutes
    assert projected_spend(D("1"), short, start + timedelta(minutes=45)) is None
    assert projected_spend(D("1"), short, start + timedelta(hours=1)) == D("10")


def test_projection_is_linear_and_exact() -> None:
    assert DAY.start is not None and DAY.end is not None
    assert projected_spend(D("12.34"), DAY, DAY.start + timedelta(hours=12)) == D("24.68")
    assert projected_spend(D("1"), DAY, DAY.start + timedelta(hours=3)) == D("8")
    # A third of the day: rounded to the micro-dollar, not a float.
    assert projected_spend(D("1"), DAY, DAY.start + timedelta(hours=16)) == D("1.5")
    assert projected_spend(D("1"), DAY, DAY.start + timedelta(hours=9)) == D("2.666667")
    # At or past the end the spend is final.
    assert projected_spend(D("7.5"), DAY, DAY.end) == D("7.5")
    assert projected_spend(D("7.5"), DAY, DAY.end + timedelta(days=3)) == D("7.5")


def test_forecast_only_when_the_projection_passes_the_limit() -> None:
    daily = budget(period="day", limit="100")
    assert DAY.start is not None
    noon = DAY.start + timedelta(hours=12)
    assert forecast_overrun(daily, DAY, D("50"), noon) is None  # lands exactly on the limit
    overrun = forecast_overrun(daily, DAY, D("50.000001"), noon)
    assert overrun is not None and overrun.projected_usd == D("100.000002")
    assert forecast_overrun(daily, DAY, D("10"), noon) is None
    assert forecast_overrun(daily, DAY, D("10"), DAY.start + timedelta(minutes=10)) is None  # too early


# --- payloads -------------------------------------------------------------------------------
def test_threshold_payload_has_what_the_contract_requires() -> None:
    paris = budget(limit="100.00", timezone="Europe/Paris", soft=True)
    window = window_for("month", "Europe/Paris", NOW)
    payload = threshold_payload(paris, window, 80, D("80.50"), at=NOW, alert_id="alrt_1")
    assert payload == {
        "event": THRESHOLD_CROSSED,
        "id": "alrt_1",
        "at": "2026-11-10T12:00:00Z",
        "budget": {
            "name": "eng-monthly",
            "scope": "team:eng",
            "limit_usd": "100",
            "approved_extra_usd": "0",
            "effective_limit_usd": "100",
            "period": "month",
            "window": "2026-11",
            "period_start": "2026-10-31T23:00:00Z",  # local midnight in Paris, in UTC
            "period_end": "2026-11-30T23:00:00Z",
            "timezone": "Europe/Paris",
            "soft": True,
        },
        "threshold": 80,
        "threshold_usd": "80",
        "spent_usd": "80.5",
    }
    # Plain JSON all the way: money is strings, never floats.
    assert json.loads(orjson.dumps(payload)) == payload


def test_lifetime_budget_has_no_period_bounds() -> None:
    lifetime = budget(period="total", scope=Scope.parse("customer:acme"))
    payload = threshold_payload(lifetime, window_for("total", "UTC", NOW), 50, D("0.000000123"), at=NOW, alert_id="a")
    assert payload["budget"]["period_start"] is None
    assert payload["budget"]["period_end"] is None
    assert payload["budget"]["window"] == "total"
    assert payload["spent_usd"] == "0.000000123"  # exact, no exponent


def test_forecast_and_exhausted_payloads() -> None:
    forecast = forecast_payload(budget(), NOV, D("40"), D("133.333333"), at=NOW, alert_id="f")
    assert forecast["event"] == FORECAST_OVERRUN
    assert (forecast["spent_usd"], forecast["projected_usd"]) == ("40", "133.333333")
    assert forecast["budget"]["period_start"] == "2026-11-01T00:00:00Z"
    exhausted = exhausted_payload(budget(), NOV, D("99.90"), D("0.25"), at=NOW, alert_id="e")
    assert exhausted["event"] == EXHAUSTED
    assert (exhausted["spent_usd"], exhausted["reserved_usd"]) == ("99.9", "0.25")
    assert exhausted["budget"]["limit_usd"] == "100"


# --- Slack -----------------------------------------------------------------------------------
def test_slack_body_is_a_readable_summary() -> None:
    payload = threshold_payload(budget(), NOV, 80, D("80.5"), at=NOW, alert_id="alrt_9")
    body = slack_body(payload)
    assert body["text"] == (
        "Budget eng-monthly (team:eng) crossed 80%: $80.5 spent of $100 (month since 2026-11-01T00:00:00Z)."
    )
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    assert "alrt_9" in body["blocks"][1]["elements"][0]["text"]


def test_slack_body_for_every_event_and_escapes_free_text() -> None:
    odd = budget(scope=Scope.parse("customer:<acme & co>"))
    forecast = slack_body(forecast_payload(odd, NOV, D("40"), D("133.3"), at=NOW, alert_id="f"))
    assert "$133.3" in forecast["text"] and "over its $100 limit" in forecast["text"]
    assert "customer:&lt;acme &amp; co&gt;" in forecast["blocks"][0]["text"]["text"]
    exhausted = slack_body(exhausted_payload(budget(), NOV, D("100"), D("2"), at=NOW, alert_id="e"))
    assert "exhausted" in exhausted["text"] and "$2 in flight" in exhausted["text"]
    assert "test" in slack_body(webhook_test_payload("wh_1", at=NOW, alert_id="t"))["text"]


# --- signatures, webhooks, retries -------------------------------------------------------------
def test_signature_signs_the_timestamp_with_the_body_as_stripe_does() -> None:
    body = orjson.dumps(threshold_payload(budget(), NOV, 50, D("50"), at=NOW, alert_id="s"))
    header = signature_header(body, "whsec-123", 1_790_000_000)
    # Computed independently: HMAC-SHA256 over "<t>.<body>", hex.
    expected = hmac.new(b"whsec-123", b"1790000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1790000000,v1={expected}"


@pytest.mark.parametrize(
    ("case", "ok"),
    [
        ("as sent", True),
        ("4 minutes later", True),
        ("6 minutes later", False),  # outside the 5-minute replay window
        ("6 minutes early", False),
        ("other secret", False),
        ("body changed", False),
        ("timestamp changed", False),
        ("no timestamp", False),
        ("second v1 matches", True),  # a secret being rotated
        ("garbage", False),
    ],
)
def test_verify_signature(case: str, ok: bool) -> None:
    body, secret, t = b'{"event": "webhook.test"}', "whsec-123", 1_790_000_000
    header, now = signature_header(body, secret, t), float(t)
    mac = header.split("v1=")[1]
    if case == "4 minutes later":
        now += 240
    elif case == "6 minutes later":
        now += 360
    elif case == "6 minutes early":
        now -= 360
    elif case == "other secret":
        secret = "whsec-456"
    elif case == "body changed":
        body += b" "
    elif case == "timestamp changed":
        header = f"t={t + 1},v1={mac}"
    elif case == "no timestamp":
        header = f"v1={mac}"
    elif case == "second v1 matches":
        header = f"t={t},v1={'0' * 64},v1={mac}"
    elif case == "garbage":
        header = "t=١٢,v1=é"
    assert verify_signature(header, body, secret, now=now) is ok


def test_webhook_checks() -> None:
    check_webhook("https://hooks.slack.com/services/T/B/X", "slack")
    check_webhook("http://127.0.0.1:9000/hook", "json")
    for url, fmt in [("ftp://x/y", "json"), ("hooks.example.com", "json"), ("http://x/y", "xml")]:
        with pytest.raises(WebhookError):
            check_webhook(url, fmt)


def test_retry_delays_double_and_are_capped() -> None:
    assert [retry_delay(n) for n in range(1, 6)] == [2, 4, 8, 16, 32]
    assert retry_delay(9) == 512 and retry_delay(10) == 600 and retry_delay(10_000) == 600
    assert retry_delay(3, base=0.05) == pytest.approx(0.2)


# --- what an observation calls for ------------------------------------------------------------
def test_alerts_due_skips_what_is_done() -> None:
    early = datetime(2026, 11, 1, 1, tzinfo=UTC)  # too early in the month for a forecast
    seen = Observation(budget(), NOV, D("85"))
    due = alerts_due(seen, early)
    assert [(a.kind, a.threshold) for a in due] == [(THRESHOLD_CROSSED, 50), (THRESHOLD_CROSSED, 80)]
    assert alerts_due(seen, early, {(THRESHOLD_CROSSED, 50), (THRESHOLD_CROSSED, 80)}) == []
    assert len({a.payload["id"] for a in due}) == 2  # every alert its own id
    # Nine and a half days into November, 85 spent projects to 268.42: a forecast too.
    late = alerts_due(seen, NOW, {(THRESHOLD_CROSSED, 50), (THRESHOLD_CROSSED, 80)})
    assert [(a.kind, a.payload["projected_usd"]) for a in late] == [(FORECAST_OVERRUN, "268.421053")]


def test_alerts_due_for_refusals() -> None:
    refused = Observation(budget(), NOV, D("99"), reserved=D("3"), exhausted=True)
    due = alerts_due(refused, NOW)
    assert [(a.kind, a.threshold) for a in due] == [
        (THRESHOLD_CROSSED, 50),
        (THRESHOLD_CROSSED, 80),
        (THRESHOLD_CROSSED, 100),  # spent: 100% is reached although spend stopped at 99
        (EXHAUSTED, 0),
    ]
    assert (due[-1].payload["spent_usd"], due[-1].payload["reserved_usd"]) == ("99", "3")
    assert alerts_due(refused, NOW, {(EXHAUSTED, 0), *((THRESHOLD_CROSSED, p) for p in (50, 80, 100))}) == []
    assert alerts_due(Observation(budget(soft=True), NOV, D("99"), reserved=D("3"), exhausted=True), NOW) == []
    # A refusal of one request too large for what is left is not exhaustion.
    too_large = Observation(budget(alert_at=()), NOV, D("5"), reserved=D("0"))
    assert alerts_due(too_large, NOW) == []


def test_a_blocking_budget_is_exhausted_once_spend_reaches_its_limit() -> None:
    early = datetime(2026, 11, 1, 1, tzinfo=UTC)
    kinds = [(a.kind, a.threshold) for a in alerts_due(Observation(budget(alert_at=()), NOV, D("100")), early)]
    assert kinds == [(EXHAUSTED, 0)]
    assert alerts_due(Observation(budget(alert_at=(), soft=True), NOV, D("150")), early) == []
    assert crossed_thresholds(budget(alert_at=(50, 100, 120)), D("10"), exhausted=True) == [50, 100]
