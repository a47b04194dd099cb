"""The dashboard's pure parts (filters, time buckets, budgets at risk, key rotation names), its
page registry, and its report filters on both backends."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate.budgets.model import Budget, Scope
from spendgate.reports.spec import ReportQuery, ReportRow
from spendgate.ui.filters import FilterError, parse_filters
from spendgate.ui.registry import pages
from spendgate.ui.series import bucket_of, buckets, spend_series
from spendgate.ui.views.budgets import at_risk, scope_filter
from spendgate.ui.views.keys import rotated_name
from tests.access_support import SECRET_PROJECT, add_user, form_token, logged_in, org_with_traffic

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
TODAY = date(2026, 3, 15)


def test_filters_default_to_the_last_30_days_and_are_bounded() -> None:
    f = parse_filters({}, TODAY)
    assert (f.since, f.until, f.grain, f.where) == (date(2026, 2, 14), TODAY, "day", ())
    f = parse_filters({"since": "2026-01-01", "project": "p", "feature": "(none)", "tag": "agent:x"}, TODAY)
    assert f.where == (("project", "p"), ("feature", None), ("tag:agent", "x"))
    assert f.params()["feature"] == "(none)" and f.params()["tag"] == "agent:x"
    fixed = parse_filters({"project": "other"}, TODAY, fixed={"project": "mine"})
    assert fixed.where == (("project", "mine"),)  # the path wins over the query string
    for bad in (
        {"since": "2026-02-01", "until": "2026-01-01"},
        {"since": "yesterday"},
        {"since": "2020-01-01"},  # over three years
        {"grain": "hour"},
        {"by": "password"},
        {"tag": "bad name:x"},
        {"project": "x" * 201},
    ):
        with pytest.raises(FilterError):
            parse_filters(bad, TODAY)


def test_weeks_and_months_bucket_the_days_and_keep_the_total() -> None:
    assert bucket_of(date(2026, 3, 15), "week") == date(2026, 3, 9)  # a Sunday: its Monday
    assert bucket_of(date(2026, 3, 15), "month") == date(2026, 3, 1)
    assert buckets(date(2026, 2, 27), date(2026, 3, 2), "month") == [date(2026, 2, 1), date(2026, 3, 1)]
    rows = [
        ReportRow(dims={"day": "2026-02-27", "team": "a"}, cost_usd=Decimal("0.1"), requests=1),
        ReportRow(dims={"day": "2026-03-01", "team": None}, cost_usd=Decimal("0.25"), requests=2),
        ReportRow(dims={"day": "2026-03-02", "team": "a"}, cost_usd=Decimal("0.05"), requests=1),
    ]
    series = spend_series(rows, "team", date(2026, 2, 27), date(2026, 3, 2), "month")
    assert series.totals == [Decimal("0.1"), Decimal("0.30")] and series.requests == [1, 3]
    assert series.share_of(None) == [Decimal(0), Decimal("0.25") / Decimal("0.30")]
    chart = series.chart("spend")
    assert [s["label"] for s in chart["series"]] == ["total", "a", "(none)"]
    assert chart["series"][0]["values"] == ["0.1", "0.3"]


def test_budgets_at_risk_and_their_report_filters() -> None:
    status = {"limit_usd": "10", "spent_usd": "7", "reserved_usd": "0.5", "projected_usd": "9"}
    assert not at_risk(status)
    assert at_risk({**status, "reserved_usd": "1"})  # 80% used
    assert at_risk({**status, "projected_usd": "10"})  # on course to reach the limit
    assert scope_filter(Scope.parse("org")) == ()
    assert scope_filter(Scope.parse("key:k1")) == (("key", ("k1",)),)
    assert scope_filter(Scope.parse("tag:agent=x")) == (("tag:agent", ("x",)),)


def test_rotated_key_names() -> None:
    assert rotated_name("checkout", set()) == "checkout-v2"
    assert rotated_name("checkout-v2", {"checkout-v3"}) == "checkout-v4"


def test_every_page_is_documented_in_the_readme() -> None:
    for page in pages():
        if page.nav:
            assert f"`{page.path}" in README, page.path


def test_report_filters_on_rollups_and_raw_events_agree(make_gateway) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    store = gateway.store
    for where, cost in (
        ((("project", ("checkout",)),), "0.00042"),
        ((("team", ("search-team",)), ("feature", (None,))), "0.0021"),
        ((("project", (None,)),), "0"),
        ((("model", ("gpt-4o-mini",)), ("project", (SECRET_PROJECT,))), "0.0021"),
    ):
        rollups = store.report(ReportQuery(by=("day",), where=where))
        events = store.report(ReportQuery(by=("day",), where=where), source="events")
        assert str(rollups.total_cost_usd.normalize()) == str(events.total_cost_usd.normalize()) == cost
    tagged = store.report(ReportQuery(by=("project",), where=(("tag:agent", ("none",)),)))
    assert tagged.rows == []
    listed = store.list_events(10, where=(("project", ("checkout",)),))
    assert len(listed) == 2 and {e["project"] for e in listed} == {"checkout"}


def test_raw_events_are_read_from_the_latest_days_with_requests_only() -> None:
    from spendgate.ui.views.spend import recent_days

    rows = [
        ReportRow(dims={"day": f"2026-03-{d:02d}", "x": None}, requests=n)
        for d, n in ((1, 5), (9, 3), (10, 0), (12, 4))
    ]
    assert recent_days(rows, 4, 3) == (date(2026, 3, 12), date(2026, 3, 12))
    assert recent_days(rows, 7, 3) == (date(2026, 3, 12), date(2026, 3, 12))  # the 9th is 3 days back
    assert recent_days(rows, 7, 4) == (date(2026, 3, 9), date(2026, 3, 12))
    assert recent_days(rows, 100, 30) == (date(2026, 3, 1), date(2026, 3, 12))
    assert recent_days([], 10, 3) is None


def test_alerts_webhooks_and_members_pages_follow_the_roles(make_gateway) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    store = gateway.store
    store.create_budget(Budget("checkout-monthly", Scope.parse("project:checkout"), Decimal("0.0001")))
    store.create_budget(Budget("ranker-monthly", Scope.parse(f"project:{SECRET_PROJECT}"), Decimal("0.0001")))
    gateway.wait_for_directory()
    for budget in ("checkout-monthly", "ranker-monthly"):
        store.record_alert("threshold", budget, "2026-12", 80, {"id": f"al_{budget}", "budget": budget})
    add_user(gateway, "root", admin=True)
    add_user(gateway, "max", ("project", "checkout", "manager"))
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    with logged_in(gateway, "root") as client:
        token = form_token(client.get("/ui/alerts"))
        hook = {"csrf_token": token, "url": "https://hooks.example.com/x?token=very-secret", "format": "json"}
        assert client.post("/ui/alerts/webhooks", data=hook).status_code == 303
        page = client.get("/ui/alerts").text
        assert page.count('data-testid="alert-row"') == 2 and page.count('data-testid="webhook-row"') == 1
        assert "very-secret" not in page and "very-secret" not in client.get("/ui/alerts?csv=webhooks").text
        hook_id = store.list_webhooks()[0]["id"]
        assert client.post("/ui/alerts/webhooks/remove", data={"csrf_token": token, "id": hook_id}).status_code == 303
        assert store.list_webhooks() == []
    with logged_in(gateway, "max") as client:
        page = client.get("/ui/alerts")
        assert page.text.count('data-testid="alert-row"') == 1 and "ranker-monthly" not in page.text
        assert 'data-testid="webhook-row"' not in page.text
        token = form_token(page)
        refused = client.post("/ui/alerts/webhooks", data={"csrf_token": token, "url": "https://e.example/h"})
        assert refused.status_code == 403 and store.list_webhooks() == []
        # A manager grants and revokes roles on their project, and nowhere else.
        grant = {"csrf_token": token, "user": "root", "target": "project:checkout", "role": "viewer"}
        assert client.post("/ui/members/grant", data=grant).status_code == 303
        members = client.get("/ui/members").text
        assert members.count('data-testid="member-row"') == 3  # max, ann, root on checkout
        other = {**grant, "target": f"project:{SECRET_PROJECT}"}
        assert client.post("/ui/members/grant", data=other).status_code == 403
        revoke = {"csrf_token": token, "user": "root", "target": "project:checkout"}
        assert client.post("/ui/members/revoke", data=revoke).status_code == 303
        assert [g.user for g in store.list_grants(kind="project", name="checkout")] == ["ann", "max"]
    with logged_in(gateway, "ann") as client:
        members = client.get("/ui/members").text
        assert members.count('data-testid="member-row"') == 1 and 'data-testid="grant-form"' not in members
        assert SECRET_PROJECT not in members and "max" not in members


def test_demo_serves_the_dashboard_until_stopped_and_no_serve_exits(tmp_path: Path, capsys) -> None:
    import threading
    import time

    import httpx
    from click.testing import CliRunner

    from spendgate.cli import main
    from spendgate.demo import run_demo

    db_url = f"sqlite:///{tmp_path / 'served.db'}"
    stop = threading.Event()
    demo = threading.Thread(
        target=run_demo, kwargs={"db_url": db_url, "total_requests": 60, "serve": True, "port": 0, "stop": stop}
    )
    demo.start()
    try:
        deadline = time.monotonic() + 120
        served = None
        while served is None and time.monotonic() < deadline:
            out = " ".join(capsys.readouterr().out.split())
            served = re.search(r"The dashboard: (http://\S+)/ui/ — log in as demo with the password (\S+)\.", out)
            time.sleep(0.2)
        assert served, "the demo printed no URL"
        with httpx.Client(base_url=served[1]) as client:
            token = form_token(client.get("/ui/login"))
            login = client.post("/ui/login", data={"username": "demo", "password": served[2], "csrf_token": token})
            assert login.status_code == 303
            assert 'data-testid="total-cost"' in client.get("/ui/").text
    finally:
        stop.set()
        demo.join(60)
    assert not demo.is_alive()
    # Not in a terminal (as here), `spendgate demo` exits after printing; so does --no-serve.
    result = CliRunner().invoke(main, ["demo", "--requests", "30", "--db", f"sqlite:///{tmp_path / 'b.db'}"])
    assert result.exit_code == 0 and "log in as demo with the password" in " ".join(result.output.split())


def test_a_breakdown_summed_from_its_days_is_the_report_by_that_dimension(make_gateway) -> None:
    from spendgate.ui.views.spend import without_days

    gateway = make_gateway()
    org_with_traffic(gateway)
    for by in ("project", "model", "key", "feature"):
        daily = gateway.store.report(ReportQuery(by=("day", by)))
        assert without_days(daily, by).as_json() == gateway.store.report(ReportQuery(by=(by,))).as_json()
