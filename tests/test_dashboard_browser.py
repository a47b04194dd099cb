"""The dashboard in a real browser (headless Chromium, Playwright), on both backends: what an
admin, a manager and a viewer of one project see, click and download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.access_support import add_user, org_with_traffic
from tests.browser_support import SCREENSHOTS, browser_as, cli_report_json, launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def unallocated_request(gateway: Any) -> None:
    """One request through a key with no project: spend in no project (the overview's share)."""
    secret = gateway.key("scripts-key")
    gateway.wait_for_directory()
    gateway.openai(secret).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=3000 output=300]]"}]
    )
    gateway.flush()


def chart_data(page: Any, chart: str) -> dict[str, Any]:
    return json.loads(page.locator(f"[data-chart={chart}] .chart-data").text_content())


def test_the_admin_overview_total_is_spendgate_reports(make_gateway, browser) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    unallocated_request(gateway)
    add_user(gateway, "root", admin=True)
    with browser_as(browser, gateway, "root") as page:
        total = page.get_by_test_id("total-cost").text_content()
        since = page.locator("input[name=since]").input_value()
        until = page.locator("input[name=until]").input_value()
        report = cli_report_json(gateway.db_url, "--since", since, "--until", until)
        assert total == report["total_cost_usd"] == "0.00315"  # 2 x 0.00021 + 0.0021 + 0.00063
        assert page.get_by_test_id("project-row").count() == 2
        assert page.get_by_test_id("unallocated-cost").text_content() == "0.00063"
        # The chart plots the same numbers: its total series sums to the report's total.
        spend = chart_data(page, "spend-chart")
        assert sum(Decimal(v) for v in spend["series"][0]["values"]) == Decimal(total)
        # The vendored uPlot drew it (scripts from /ui/static pass the page's CSP).
        page.wait_for_selector("[data-chart=spend-chart] canvas")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

        # Per week, through the htmx form: the page swaps in place, same total, charts redrawn.
        page.select_option("select[name=grain]", "week")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**grain=week**")
        page.wait_for_selector("[data-chart=spend-chart] canvas")
        assert page.get_by_test_id("total-cost").text_content() == total
        weekly = chart_data(page, "spend-chart")
        assert sum(Decimal(v) for v in weekly["series"][0]["values"]) == Decimal(total)
        assert len(weekly["x"]) < len(spend["x"])

        # A range before any traffic: nothing, and the report agrees.
        page.goto("/ui/?since=2020-01-01&until=2020-01-31")
        assert page.get_by_test_id("total-cost").text_content() == "0"
        assert (
            cli_report_json(gateway.db_url, "--since", "2020-01-01", "--until", "2020-01-31")["total_cost_usd"] == "0"
        )
