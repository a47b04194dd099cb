"""The dashboard in a real browser (headless Chromium, Playwright), on both backends: what an
admin, a manager and a viewer of one project see, click and download."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from spendgate.budgets.model import Budget, Scope
from spendgate.demo import run_demo
from tests.access_support import PASSWORD, SECRET_PROJECT, SECRET_TEAM, Clock, add_user, org_with_traffic
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


def budgets_on(gateway: Any) -> None:
    """checkout's monthly budget (at risk: $0.00042 of $0.0005) and search-team's (far from it)."""
    gateway.store.create_budget(Budget("checkout-monthly", Scope.parse("project:checkout"), Decimal("0.0005")))
    gateway.store.create_budget(Budget("search-monthly", Scope.parse(f"team:{SECRET_TEAM}"), Decimal("1")))
    gateway.wait_for_directory()


def test_budgets_show_spent_reserved_remaining_projected_and_a_burn_chart(make_gateway, browser) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    budgets_on(gateway)
    add_user(gateway, "root", admin=True)
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    with browser_as(browser, gateway, "root") as page:
        at_risk = page.get_by_test_id("table-budgets-at-risk")
        assert at_risk.get_by_test_id("budget-row").count() == 1 and "checkout-monthly" in at_risk.text_content()
        page.get_by_role("link", name="Budgets", exact=True).click()
        page.wait_for_url("**/ui/budgets")
        rows = page.get_by_test_id("budget-row")
        assert rows.count() == 2
        checkout = rows.filter(has_text="checkout-monthly")
        # limit, approved extra, effective limit, spent, reserved, remaining
        cells = [c.text_content() for c in checkout.locator("td").all()][3:9]
        assert cells == ["0.0005", "0", "0.0005", "0.00042", "0", "0.00008"]
        page.get_by_role("link", name="checkout-monthly").click()
        page.wait_for_selector("[data-chart=burn-chart] canvas")
        burn = chart_data(page, "burn-chart")
        spent = [v for v in burn["series"][0]["values"] if v is not None]
        assert spent[-1] == "0.00042" and set(burn["series"][1]["values"]) == {"0.0005"}
        assert len(burn["x"]) >= 28  # the whole month's window, spent so far and projected
        csv = download_csv(page, "csv-budgets")
        assert "checkout-monthly" in csv and "search-monthly" in csv
    with browser_as(browser, gateway, "ann") as page:
        page.goto("/ui/budgets")
        assert page.get_by_test_id("budget-row").count() == 1
        assert "search-monthly" not in page.content() and "search-monthly" not in download_csv(page, "csv-budgets")


def test_a_manager_creates_a_key_and_sees_its_secret_once(make_gateway, browser) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    add_user(gateway, "max", ("project", "checkout", "manager"))
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    with browser_as(browser, gateway, "max") as page:
        page.goto("/ui/keys")
        assert page.get_by_test_id("key-row").count() == 1  # checkout-key; not ranker-key
        assert "ranker-key" not in page.content()
        form = page.get_by_test_id("new-key-form")
        assert form.locator("select[name=project] option").all_text_contents() == ["checkout"]
        form.locator("input[name=name]").fill("checkout-batch")
        form.locator("button[type=submit]").click()
        secret = page.get_by_test_id("new-key-secret").text_content()
        assert secret.startswith("sk-") or len(secret) > 20
        # The secret works through the SDK, and its spend lands in checkout.
        gateway.wait_for_directory()
        gateway.openai(secret).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=1000 output=100]]"}]
        )
        gateway.flush()
        assert gateway.report("key")["rows"][-1]["key"] in ("checkout-batch", "checkout-key", "ranker-key")
        assert any(
            r["key"] == "checkout-batch" and r["project"] == "checkout"
            for r in gateway.report("key", "project")["rows"]
        )
        # Shown once: the keys page (reloaded, or any other page) never shows it again.
        page.goto("/ui/keys")
        assert secret not in page.content()
        assert page.get_by_test_id("key-row").count() == 2
        assert secret not in download_csv(page, "csv-keys")
        # Rotate: a new key with the same scope (its secret shown once); the old one keeps working.
        page.get_by_test_id("rotate-checkout-batch").click()
        rotated = page.get_by_test_id("new-key-secret").text_content()
        assert rotated != secret and "checkout-batch-v2" in page.get_by_test_id("new-key").text_content()
        page.goto("/ui/keys")
        page.get_by_test_id("revoke-checkout-batch").click()
        page.wait_for_url("**/ui/keys")
        row = page.locator("[data-testid=key-row][data-key=checkout-batch]")
        assert "revoked" in row.text_content()
        # A manager of checkout makes no key elsewhere, even by hand-made form.
        token = page.locator("input[name=csrf_token]").first.input_value()
        other = page.request.post("/ui/keys", form={"csrf_token": token, "name": "x", "project": SECRET_PROJECT})
        assert other.status == 403
    with browser_as(browser, gateway, "ann") as page:  # a viewer: no form, no buttons
        page.goto("/ui/keys")
        assert page.get_by_test_id("new-key-form").count() == 0
        assert page.locator("button", has_text="Revoke").count() == 0
        token = page.locator("input[name=csrf_token]").first.input_value()
        assert (
            page.request.post("/ui/keys", form={"csrf_token": token, "name": "y", "project": "checkout"}).status == 403
        )
    assert {k.name for k in gateway.store.list_keys()} == {
        "checkout-key",
        "ranker-key",
        "checkout-batch",
        "checkout-batch-v2",
    }


def test_forms_need_the_sessions_csrf_token_and_sessions_expire(make_gateway, browser) -> None:
    clock = Clock()
    gateway = make_gateway(clock=clock, session_idle_timeout=600, session_max_age=3600)
    org_with_traffic(gateway)
    add_user(gateway, "root", admin=True)
    with browser_as(browser, gateway, "root") as page:
        page.goto("/ui/keys")
        # The same form without its token, or with another's, is refused and changes nothing.
        for token in (None, "0" * 64):
            form = {"name": "forged", "project": "checkout", **({"csrf_token": token} if token else {})}
            assert page.request.post("/ui/keys", form=form).status == 403
        assert page.request.post("/ui/keys/checkout-key/revoke", form={}).status == 403
        assert page.request.post("/ui/members/grant", form={"user": "root", "target": "project:checkout"}).status == 403
        assert page.request.post("/ui/alerts/webhooks", form={"url": "https://example.com/h"}).status == 403
        assert "forged" not in {k.name for k in gateway.store.list_keys()}
        assert not gateway.store.key("checkout-key").revoked and gateway.store.list_webhooks() == []
        # A cross-site page cannot read the token, nor frame the dashboard.
        assert page.request.get("/ui/keys").headers["x-frame-options"] == "DENY"

        # Idle for longer than the idle timeout: the next page is the login form.
        clock.advance(601)
        page.goto("/ui/spend")
        assert "/ui/login" in page.url
        assert page.request.get("/admin/report").status == 401  # the API refuses the old session too
        page.fill("input[name=username]", "root")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/spend")  # back where it was going
        uses = 0  # used every 500 s: never idle, but the session's maximum age ends it
        while "/ui/login" not in page.url and uses < 10:
            clock.advance(500)
            page.goto("/ui/")
            uses += 1
        assert uses == 8  # 4,000 s after logging in (3,500 s still let it in)


def test_the_demo_month_in_the_dashboard_with_its_printed_login(make_gateway, browser, capsys) -> None:
    """`spendgate demo` (not serving) leaves a month and prints a login; the dashboard on that
    ledger shows it, its total is the report's, and the README's screenshots are taken here."""
    gateway = make_gateway()
    # In a thread of its own: Playwright's sync API holds this thread's event loop.
    demo = threading.Thread(target=run_demo, kwargs={"db_url": gateway.db_url, "total_requests": 400, "seed": 5})
    demo.start()
    demo.join(300)
    printed = capsys.readouterr().out
    login = re.search(r"log in as demo with the password (\S+)", " ".join(printed.split()))
    assert login, printed
    gateway.store.create_budget(
        Budget("checkout-copilot-monthly", Scope.parse("project:checkout-copilot"), Decimal("0.75"))
    )
    gateway.store.create_budget(Budget("growth-monthly", Scope.parse("team:growth"), Decimal("2"), period="week"))
    gateway.wait_for_directory()
    first_day = min(r["day"] for r in cli_report_json(gateway.db_url, "--by", "day")["rows"])
    with browser_as(browser, gateway, "demo", login[1]) as page:
        page.goto(f"/ui/?since={first_day}")
        until = page.locator("input[name=until]").input_value()
        report = cli_report_json(gateway.db_url, "--since", first_day, "--until", until)
        assert page.get_by_test_id("total-cost").text_content() == report["total_cost_usd"]
        assert page.get_by_test_id("project-row").count() == 5
        page.wait_for_selector("[data-chart=spend-chart] canvas")
        shots = "sqlite" in gateway.db_url  # one set of screenshots (the backends look the same)
        if shots:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)
        page.get_by_test_id("project-row").filter(has_text="checkout-copilot").get_by_role("link").click()
        page.wait_for_selector("[data-chart=spend-chart] canvas")
        by_feature = cli_report_json(gateway.db_url, "--by", "project,feature", "--since", first_day, "--until", until)
        mine = [r for r in by_feature["rows"] if r["project"] == "checkout-copilot"]
        assert page.get_by_test_id("breakdown-row").count() == len(mine)
        assert page.get_by_test_id("total-cost").text_content() == str(
            sum(Decimal(r["cost_usd"]) for r in mine).normalize()
        )
        if shots:
            page.screenshot(path=str(SCREENSHOTS / "project.png"), full_page=True)
        page.goto("/ui/budgets?budget=checkout-copilot-monthly")
        page.wait_for_selector("[data-chart=burn-chart] canvas")
        assert page.get_by_test_id("budget-row").count() == 2
        if shots:
            page.screenshot(path=str(SCREENSHOTS / "budgets.png"), full_page=True)
