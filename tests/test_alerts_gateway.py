"""Budget alerts from the running gateway: real SDK traffic, the real ledger and enforcer,
and a real webhook receiver. Skipped until the gateway reports budgets to an AlertCenter."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest

from spendgate.budgets.model import Budget, Scope
from tests.conftest import Gateway
from tests.test_alerts_support import Clock, Receiver, running_receiver, verified

# Half an hour into November: too early for a forecast, so only thresholds and the refusal fire.
EARLY_NOV = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
FILLER = "spend " * 500


def _ask() -> dict:
    return {
        "model": "gpt-4o-mini",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": f"[[sim output=200]] {FILLER}"}],
    }


def _wait_for(receiver: Receiver, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(receiver.requests)} of {count} alerts arrived")
        time.sleep(0.02)
    time.sleep(0.3)  # room for a duplicate to show up, were there one


def test_gateway_spend_fires_each_threshold_and_the_refusal_once(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(clock=Clock(EARLY_NOV))
    if not hasattr(gateway.store, "add_webhook") or getattr(gateway.app.enforcer, "observer", None) is None:
        pytest.skip("the gateway does not report budget spend to an AlertCenter yet")
    with running_receiver() as (rx, url):
        gateway.store.add_webhook(f"{url}/hook", "whsec-gw")
        gateway.team("payments")
        gateway.project("checkout", team="payments")
        key = gateway.key("checkout-key", project="checkout")
        gateway.store.create_budget(
            Budget("payments-monthly", Scope.parse("team:payments"), Decimal("0.001"), alert_at=(50, 80))
        )
        gateway.wait_for_directory()
        client = gateway.openai(key)
        refusals = 0
        for _ in range(60):
            try:
                client.chat.completions.create(**_ask())
            except openai.APIStatusError as exc:
                assert exc.status_code == 402
                refusals += 1
                if refusals == 3:
                    break
        assert refusals == 3
        _wait_for(rx, 3)
        got = rx.requests
    assert Counter((r.json()["event"], r.json().get("threshold")) for r in got) == {
        ("budget.threshold_crossed", 50): 1,
        ("budget.threshold_crossed", 80): 1,
        ("budget.exhausted", None): 1,
    }
    for request in got:
        assert verified(request.body, request.headers["x-spendgate-signature"], "whsec-gw")
        body = request.json()
        assert body["budget"]["name"] == "payments-monthly"
        assert body["budget"]["period_start"] == "2026-11-01T00:00:00Z"
        assert Decimal(body["spent_usd"]) <= Decimal("0.001")
