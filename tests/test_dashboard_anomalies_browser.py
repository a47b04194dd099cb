"""The anomalies page and the budget forecast in a real browser (headless Chromium, Playwright),
on both backends: an admin acknowledges an anomaly, and the budgets page draws "at this pace".
The README's anomalies.png is taken here (budgets.png, which also shows the pace line, is the demo's:
tests/test_dashboard_browser.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendgate.budgets.model import Budget, Scope
from spendgate.ui.burn import PACE
from tests.access_support import Clock, add_user, org_with_traffic
from tests.anomaly_page_support import NOISY, history, record_anomalies
from tests.browser_support import SCREENSHOTS, browser_as, launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def test_an_admin_acknowledges_an_anomaly_and_the_budgets_page_shows_the_pace(make_gateway, browser) -> None:
    clock = Clock(now=datetime(2026, 11, 18, 15, 30, tzinfo=UTC))
    gateway = make_gateway(clock=clock)
    org_with_traffic(gateway)
    clock.advance(60)
    days = [clock.now - timedelta(days=n) for n in range(1, 36)]
    history(gateway, "checkout", "payments", [d for d in days if d.weekday() < 5], NOISY)
    gateway.store.create_budget(Budget("checkout-monthly", Scope.parse("project:checkout"), Decimal("0.0021")))
    ids = record_anomalies(gateway, clock.now)
    add_user(gateway, "root", admin=True)
    shots = "sqlite" in gateway.db_url  # one set of screenshots (the backends look the same)
    with browser_as(browser, gateway, "root") as page:
        page.get_by_role("link", name="Anomalies", exact=True).click()
        page.wait_for_url("**/ui/anomalies")
        assert page.get_by_test_id("anomaly-row").count() == 4
        assert page.get_by_test_id("suspension-row").count() == 2
        mine = ids["project:checkout"]
        row = page.locator(f"[data-testid=anomaly-row][data-anomaly={mine}]")
        assert row.get_by_test_id("anomaly-status").text_content() == "open"
        page.get_by_test_id(f"ack-{mine}").click()
        page.wait_for_load_state()
        assert row.get_by_test_id("anomaly-status").text_content() == "acknowledged"
        assert gateway.store.anomaly(mine)["status"] == "acknowledged"
        assert row.get_by_test_id(f"ack-{mine}").count() == 0  # acknowledged: only Resolve is left
        if shots:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "anomalies.png"), full_page=True)

        page.get_by_role("link", name="Budgets", exact=True).click()
        page.wait_for_url("**/ui/budgets")
        page.wait_for_selector("[data-chart=burn-chart] canvas")
        chart = json.loads(page.locator("[data-chart=burn-chart] .chart-data").text_content())
        labels = [s["label"] for s in chart["series"]]
        assert PACE in labels and any(label.startswith("runs out 2026-11-") for label in labels)
        # uPlot drew the pace line: its legend names it.
        assert page.locator("[data-chart=burn-chart] .u-legend", has_text=PACE).count() == 1
