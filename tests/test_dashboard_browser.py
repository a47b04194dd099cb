"""The dashboard in a real browser (headless Chromium, Playwright), on both backends: what an
admin, a manager and a viewer of one project see, click and download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.access_support import SECRET_PROJECT, SECRET_TEAM, add_user, org_with_traffic
from tests.browser_support import SCREENSHOTS, browser_as, cli_report_json, download_csv, launch


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


def test_a_viewer_of_one_project_sees_its_numbers_and_nothing_of_the_others(make_gateway, browser) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    unallocated_request(gateway)
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    with browser_as(browser, gateway, "ann") as page:
        # The overview: checkout's 2 x $0.00021 and nothing else (no org total, no unallocated).
        assert page.get_by_test_id("total-cost").text_content() == "0.00042"
        assert page.get_by_test_id("project-row").count() == 1
        assert "checkout" in page.get_by_test_id("project-row").text_content()
        assert page.get_by_test_id("unallocated-cost").text_content() == "0"
        seen = [page.content()]
        chart = chart_data(page, "spend-chart")
        assert sum(Decimal(v) for v in chart["series"][0]["values"]) == Decimal("0.00042")

        # Drill down: overview -> project page -> feature -> single events.
        page.get_by_test_id("project-row").get_by_role("link", name="checkout").click()
        page.wait_for_url("**/ui/projects/checkout**")
        assert page.get_by_test_id("page-heading").text_content() == "Project checkout"
        assert page.get_by_test_id("total-cost").text_content() == "0.00042"
        assert page.get_by_test_id("requests").text_content() == "2"
        assert page.get_by_test_id("error-rate").text_content() == "0.0%"
        assert page.get_by_test_id("event-row").count() == 2
        page.get_by_test_id("breakdown-row").first.get_by_role("link").click()  # feature (none)
        page.wait_for_url("**feature=**")
        assert page.get_by_test_id("event-row").count() == 2
        seen.append(page.content())
        # Every breakdown of the project, and the CSV of each table, hold only checkout's spend.
        for by in ("model", "customer", "environment", "key", "team", "provider"):
            page.goto(f"/ui/projects/checkout?by={by}")
            seen.append(page.content())
            assert page.get_by_test_id("total-cost").text_content() == "0.00042"
        csvs = [download_csv(page, "csv-breakdown"), download_csv(page, "csv-events")]
        page.goto("/ui/")
        csvs += [download_csv(page, f"csv-{name}") for name in ("teams", "projects", "models", "spend-over-time")]
        assert "checkout" in csvs[1] and "0.00042" in csvs[2]
        page.goto("/ui/spend")
        seen.append(page.content())
        csvs.append(download_csv(page, "csv-breakdown"))

        # Another project's page, named in the path or a filter: as if it did not exist.
        for path in (
            f"/ui/projects/{SECRET_PROJECT}",
            f"/ui/teams/{SECRET_TEAM}",
            f"/ui/spend?project={SECRET_PROJECT}",
        ):
            assert page.goto(path).status == 404
        # The admin API with the browser's session: the same scoping.
        api = page.request
        report = api.get("/admin/report?by=project,team").json()
        assert report["total_cost_usd"] == "0.00042" and [r["project"] for r in report["rows"]] == ["checkout"]
        events = api.get("/admin/events?limit=100").json()
        assert {e["project"] for e in events} == {"checkout"}
        assert [p["name"] for p in api.get("/admin/projects").json()] == ["checkout"]
        assert api.get(f"/admin/projects/{SECRET_PROJECT}").status == 404
        assert api.post("/admin/keys", data={"name": "x", "project": "checkout"}).status == 403  # no CSRF token
        seen += [json.dumps(report), json.dumps(events), api.get("/admin/keys").text()]

    everything = "\n".join(seen + csvs)
    for secret in (SECRET_PROJECT, SECRET_TEAM, "ranker-key", "scripts-key", "0.0021", "0.00063", "0.00315"):
        assert secret not in everything, secret
