"""The dashboard's anomalies page (who sees which anomalies and suspensions, who may
acknowledge, resolve and resume them, and what that changes: the gateway admits a resumed
scope again) and the budget burn chart's forecast ("at this pace", from budgets/forecast.py)."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from spendgate.access.model import Grant, User, Viewer
from spendgate.attribution.model import GatewayKey, Project
from spendgate.budgets.forecast import Forecast
from spendgate.budgets.forecasts import budget_forecasts
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, Budget, Scope
from spendgate.ui.anomaly_access import acts_on_scope, sees_scope
from spendgate.ui.anomaly_filters import parse_anomaly_filters
from spendgate.ui.burn import PACE, PACE_HIGH, PACE_LOW, burn_lines
from spendgate.ui.filters import FilterError
from tests.access_support import SECRET_PROJECT, SECRET_TEAM, Clock, add_user, form_token, logged_in, org_with_traffic
from tests.anomaly_page_support import NOISY, anomaly_on, history, record_anomalies

_ROW = re.compile(r'data-testid="anomaly-row" data-anomaly="([^"]+)"')
_CHART = re.compile(
    r'data-chart="burn-chart".*?<script type="application/json" class="chart-data">(.*?)</script>', re.S
)


def shown_ids(page: httpx.Response) -> set[str]:
    assert page.status_code == 200, page.text
    return set(_ROW.findall(page.text))


def ask(gateway: Any, secret: str) -> None:
    gateway.openai(secret).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=100 output=10]]"}]
    )


# --- pure parts -----------------------------------------------------------------------------------
def test_who_sees_and_acts_on_a_scopes_anomalies() -> None:
    projects = [Project("checkout", "payments"), Project(SECRET_PROJECT, SECRET_TEAM)]
    keys = {
        "checkout-key": GatewayKey("checkout-key", "h1", "sk-1", project="checkout", locked=True),
        "loose-key": GatewayKey("loose-key", "h2", "sk-2", project="checkout", locked=False),
    }
    ann = Viewer.of_user(User("ann"), [Grant("ann", "project", "checkout", "viewer")], projects)
    max_ = Viewer.of_user(User("max"), [Grant("max", "project", "checkout", "manager")], projects)
    lead = Viewer.of_user(User("lead"), [Grant("lead", "team", "payments", "manager")], projects)
    root = Viewer.of_user(User("root", is_admin=True), [], projects)
    cases = {
        # scope, feature's projects -> (ann sees, max acts, lead sees, lead acts)
        ("project:checkout", frozenset()): (True, True, True, True),
        (f"project:{SECRET_PROJECT}", frozenset()): (False, False, False, False),
        ("key:checkout-key", frozenset()): (True, True, True, True),
        ("key:loose-key", frozenset()): (False, False, False, False),  # its spend can land elsewhere
        ("team:payments", frozenset()): (False, False, True, True),  # a project role is not the team's
        ("feature:chat", frozenset({"checkout"})): (True, True, True, True),
        ("feature:chat", frozenset({"checkout", SECRET_PROJECT})): (False, False, False, False),
        ("feature:chat", frozenset({"checkout", None})): (False, False, False, False),
        ("feature:chat", frozenset()): (False, False, False, False),
        ("org", frozenset()): (False, False, False, False),
        ("customer:acme", frozenset()): (False, False, False, False),
    }
    for (text, feature_projects), expected in cases.items():
        scope = Scope.parse(text)
        got = (
            sees_scope(ann, scope, keys, feature_projects),
            acts_on_scope(max_, scope, keys, feature_projects),
            sees_scope(lead, scope, keys, feature_projects),
            acts_on_scope(lead, scope, keys, feature_projects),
        )
        assert got == expected, text
        assert not acts_on_scope(ann, scope, keys, feature_projects)  # a viewer never acts
        assert sees_scope(root, scope, keys) and acts_on_scope(root, scope, keys)


def test_anomaly_filters_are_bounded() -> None:
    today = date(2026, 11, 18)
    chosen = parse_anomaly_filters({"status": "open", "kind": "project", "since": "2026-11-01"}, today)
    assert (chosen.since, chosen.until, chosen.status, chosen.kind) == (date(2026, 11, 1), today, "open", "project")
    assert parse_anomaly_filters({}, today).since == date(2026, 10, 20)
    assert parse_anomaly_filters({"kind": "trace"}, today).kind == "trace"  # runaway agent runs
    for bad in (
        {"status": "closed"},
        {"kind": "budget"},
        {"since": "soon"},
        {"since": "2026-11-10", "until": "2026-11-01"},
        {"since": "2020-01-01"},
    ):
        with pytest.raises(FilterError):
            parse_anomaly_filters(bad, today)


def test_the_pace_lines_end_on_the_forecasts_figures_and_mark_the_run_out_day() -> None:
    days = [date(2026, 11, d) for d in range(1, 31)]
    daily = [Decimal("0.5")] * 18 + [Decimal(0)] * 12
    expected = {date(2026, 11, 18): Decimal("0.25"), **{d: Decimal("0.500001") for d in days[18:]}}
    forecast = Forecast(
        spent_usd=Decimal("9"),
        projected_usd=Decimal("15.250012"),
        low_usd=Decimal("13.1"),
        high_usd=Decimal("17.3"),
        runs_out_on=date(2026, 11, 21),
        expected_by_day=expected,
    )
    lines = burn_lines(days, daily, date(2026, 11, 18), Decimal("10.5"), forecast)
    series = {s["label"]: s["values"] for s in lines["series"]}
    assert series["spent"][17] == "9" and series["spent"][18] is None
    assert series["limit"] == ["10.5"] * 30
    assert series[PACE][:17] == [None] * 17
    assert series[PACE][17] == "9.25" and series[PACE][18] == "9.750001"
    assert (series[PACE][-1], series[PACE_LOW][-1], series[PACE_HIGH][-1]) == ("15.250012", "13.1", "17.3")
    assert all(
        Decimal(lo) <= Decimal(mid) <= Decimal(hi)
        for lo, mid, hi in zip(series[PACE_LOW][17:], series[PACE][17:], series[PACE_HIGH][17:], strict=True)
    )
    assert series["runs out 2026-11-21"] == [("10.5" if d == date(2026, 11, 21) else None) for d in days]
    assert lines["bands"] == [[PACE_HIGH, PACE_LOW]]
    # A run-out day after the window's end is not marked; no forecast, no pace lines.
    later = burn_lines(
        days, daily, date(2026, 11, 18), Decimal("10.5"), replace(forecast, runs_out_on=date(2026, 12, 2))
    )
    assert not [s for s in later["series"] if s["label"].startswith("runs out")]
    unmarked = burn_lines(days, daily, date(2026, 11, 18), Decimal("10.5"), None)
    assert [s["label"] for s in unmarked["series"]] == ["spent", "limit"] and unmarked["bands"] == []


def test_the_newest_anomalies_of_a_period_are_read_first(make_gateway) -> None:
    store = make_gateway().store
    t0 = datetime(2026, 11, 10, 12, tzinfo=UTC)
    ids = [
        store.record_anomaly(
            anomaly_on(f"project:p{n}", t0 + timedelta(days=n)),
            merge_gap=timedelta(minutes=30),
            source="scan",
            now=t0 + timedelta(days=n),
            alert_id=f"al_{n}",
        )[0]
        for n in range(4)
    ]
    day = timedelta(days=1)
    assert [a["id"] for a in store.list_anomalies()] == ids  # oldest first, as the CLI lists them
    assert [a["id"] for a in store.list_anomalies(t0, 2, newest_first=True)] == [ids[3], ids[2]]
    between = store.list_anomalies(
        t0 + day - timedelta(minutes=30), until=t0 + 2 * day + timedelta(minutes=1), newest_first=True
    )
    assert [a["id"] for a in between] == [ids[2], ids[1]]
    # Windows are half-open: the anomaly of the hour ending exactly at t0 + day is not after it.
    assert [a["id"] for a in store.list_anomalies(t0 + day)] == ids[2:]


# --- through the gateway ---------------------------------------------------------------------------
def test_a_viewer_sees_only_their_projects_anomalies_and_cannot_act_on_any(make_gateway) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    ids = record_anomalies(gateway, datetime.now(UTC))
    add_user(gateway, "root", admin=True)
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    add_user(gateway, "max", ("project", "checkout", "manager"))
    add_user(gateway, "sara", ("team", SECRET_TEAM, "viewer"))
    with logged_in(gateway, "root") as client:
        page = client.get("/ui/anomalies")
        assert shown_ids(page) == set(ids.values())
        assert page.text.count('data-testid="suspension-row"') == 2
        assert 'href="/ui/anomalies"' in client.get("/ui/").text  # in the nav bar
    with logged_in(gateway, "sara") as client:  # a team role: its project and its locked key
        assert shown_ids(client.get("/ui/anomalies")) == {ids[f"project:{SECRET_PROJECT}"], ids["key:ranker-key"]}
    with logged_in(gateway, "ann") as client:
        page = client.get("/ui/anomalies")
        assert shown_ids(page) == {ids["project:checkout"]}
        assert "/ack" not in page.text and "/resume" not in page.text  # a viewer acts on nothing
        seen = (
            page.text
            + client.get("/ui/anomalies?csv=anomalies").text
            + client.get("/ui/anomalies?csv=suspensions").text
        )
        for secret in (SECRET_PROJECT, "ranker-key", ids[f"project:{SECRET_PROJECT}"], ids["org"]):
            assert secret not in seen, secret
        token = form_token(page)
        mine, theirs = ids["project:checkout"], ids[f"project:{SECRET_PROJECT}"]
        assert client.post(f"/ui/anomalies/{mine}/ack", data={"csrf_token": token}).status_code == 403
        assert client.post(f"/ui/anomalies/{theirs}/ack", data={"csrf_token": token}).status_code == 404
        assert client.post(f"/ui/anomalies/{ids['org']}/resolve", data={"csrf_token": token}).status_code == 404
        resume = {"csrf_token": token, "scope": "project:checkout"}
        assert client.post("/ui/anomalies/resume", data=resume).status_code == 403
        resume["scope"] = f"project:{SECRET_PROJECT}"
        assert client.post("/ui/anomalies/resume", data=resume).status_code == 404
    with logged_in(gateway, "max") as client:  # a manager of checkout: still nothing of the others
        token = form_token(client.get("/ui/anomalies"))
        theirs = ids[f"project:{SECRET_PROJECT}"]
        assert client.post(f"/ui/anomalies/{theirs}/resolve", data={"csrf_token": token}).status_code == 404
        assert client.post(f"/ui/anomalies/{ids['key:ranker-key']}/ack", data={"csrf_token": token}).status_code == 404
        resume = {"csrf_token": token, "scope": f"project:{SECRET_PROJECT}"}
        assert client.post("/ui/anomalies/resume", data=resume).status_code == 404
        # Without the session's CSRF token: refused before anything is looked at.
        assert client.post(f"/ui/anomalies/{ids['project:checkout']}/ack", data={}).status_code == 403
        for bad in ("/ui/anomalies?status=closed", "/ui/anomalies?kind=nope", "/ui/anomalies?since=x"):
            assert client.get(bad).status_code == 400
    assert {a["status"] for a in gateway.store.list_anomalies()} == {"open"}
    assert {s["scope"] for s in gateway.store.list_suspensions()} == {"project:checkout", f"project:{SECRET_PROJECT}"}


def test_a_feature_anomaly_is_seen_while_its_spend_was_all_in_the_viewers_projects(make_gateway) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    now = datetime.now(UTC).replace(microsecond=0)
    history(gateway, "checkout", "payments", [now - timedelta(minutes=30)], [Decimal("0.5")], feature="chat")
    anomaly_id, _, _ = gateway.store.record_anomaly(
        anomaly_on("feature:chat", now), merge_gap=timedelta(minutes=30), source="scan", now=now, alert_id="al_f1"
    )
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    add_user(gateway, "max", ("project", "checkout", "manager"))
    with logged_in(gateway, "ann") as client:
        assert shown_ids(client.get("/ui/anomalies?kind=feature")) == {anomaly_id}
    with logged_in(gateway, "max") as client:
        token = form_token(client.get("/ui/anomalies"))
        assert client.post(f"/ui/anomalies/{anomaly_id}/ack", data={"csrf_token": token}).status_code == 303
    assert gateway.store.anomaly(anomaly_id)["status"] == "acknowledged"
    # The same feature also spent in another project: no longer theirs to see or act on.
    history(gateway, SECRET_PROJECT, SECRET_TEAM, [now - timedelta(minutes=20)], [Decimal("0.5")], feature="chat")
    with logged_in(gateway, "max") as client:
        page = client.get("/ui/anomalies")
        assert shown_ids(page) == set()
        resolve = client.post(f"/ui/anomalies/{anomaly_id}/resolve", data={"csrf_token": form_token(page)})
        assert resolve.status_code == 404
    assert gateway.store.anomaly(anomaly_id)["status"] == "acknowledged"


def test_a_manager_acknowledges_resolves_and_resumes_and_the_gateway_admits_the_scope(make_gateway) -> None:
    gateway = make_gateway()
    secrets = org_with_traffic(gateway)
    ids = record_anomalies(gateway, datetime.now(UTC))
    add_user(gateway, "max", ("project", "checkout", "manager"))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        ask(gateway, secrets["checkout"])
    assert refused.value.code == "scope_suspended"
    mine = ids["project:checkout"]
    with logged_in(gateway, "max") as client:
        page = client.get("/ui/anomalies?kind=project&status=open")
        assert shown_ids(page) == {mine}
        token = form_token(page)
        acked = client.post(f"/ui/anomalies/{mine}/ack?kind=project&status=open", data={"csrf_token": token})
        assert acked.status_code == 303 and "kind=project" in acked.headers["location"]
        assert gateway.store.anomaly(mine)["status"] == "acknowledged"
        assert shown_ids(client.get("/ui/anomalies?status=open")) == set()
        assert shown_ids(client.get("/ui/anomalies?status=acknowledged")) == {mine}
        assert client.post(f"/ui/anomalies/{mine}/resolve", data={"csrf_token": token}).status_code == 303
        assert gateway.store.anomaly(mine)["status"] == "resolved"
        # Resolved is final: acknowledging it again is refused and changes nothing.
        assert client.post(f"/ui/anomalies/{mine}/ack", data={"csrf_token": token}).status_code == 400
        assert gateway.store.anomaly(mine)["status"] == "resolved"
        # A period before the anomaly shows nothing.
        assert shown_ids(client.get("/ui/anomalies?since=2026-01-01&until=2026-01-31")) == set()

        resumed = client.post("/ui/anomalies/resume", data={"csrf_token": token, "scope": "project:checkout"})
        assert resumed.status_code == 303
        assert (
            client.post("/ui/anomalies/resume", data={"csrf_token": token, "scope": "project:checkout"}).status_code
            == 404
        )
        assert client.post("/ui/anomalies/resume", data={"csrf_token": token, "scope": "nonsense"}).status_code == 400
    assert {s["scope"] for s in gateway.store.list_suspensions()} == {f"project:{SECRET_PROJECT}"}
    gateway.wait_for_directory()
    ask(gateway, secrets["checkout"])  # admitted again
    with pytest.raises(openai.PermissionDeniedError):
        ask(gateway, secrets[SECRET_PROJECT])  # the other scope stays suspended
    # The other anomalies were not touched.
    assert gateway.store.anomaly(ids[f"project:{SECRET_PROJECT}"])["status"] == "open"


def test_the_burn_charts_forecast_is_spendgate_forecasts(make_gateway) -> None:
    clock = Clock(now=datetime(2026, 11, 18, 15, 30, tzinfo=UTC))  # a Wednesday
    gateway = make_gateway(clock=clock)
    org_with_traffic(gateway)
    clock.advance(60)  # the requests are in the past (a window so far ends before now)
    # Five weeks of weekday-only history: the forecast's weekday profile.
    days = [clock.now - timedelta(days=n) for n in range(1, 36)]
    history(gateway, "checkout", "payments", [d for d in days if d.weekday() < 5], NOISY)
    gateway.store.create_budget(Budget("checkout-monthly", Scope.parse("project:checkout"), Decimal("0.0021")))
    # Extra spend approved for this window: the chart's limit is the effective one, as enforced.
    asked = gateway.store.request_approval("checkout-monthly", "2026-11", "project:checkout", clock.now)
    gateway.store.decide_approval(asked["id"], "approved", clock.now, extra=Decimal("0.0001"), reason="launch week")
    gateway.wait_for_directory()
    add_user(gateway, "root", admin=True)
    with logged_in(gateway, "root") as client:
        page = client.get("/ui/budgets?budget=checkout-monthly")
        assert page.status_code == 200, page.text
        chart = json.loads(html.unescape(_CHART.search(page.text)[1]))
    (expected,) = budget_forecasts(gateway.store, clock.now)
    series = {s["label"]: s["values"] for s in chart["series"]}
    assert "at this pace" in chart["label"]
    assert series[PACE][-1] == expected["projected_usd"]
    assert series[PACE_LOW][-1] == expected["low_usd"] and series[PACE_HIGH][-1] == expected["high_usd"]
    assert expected["effective_limit_usd"] == "0.0022"
    assert set(series["limit"]) == {expected["effective_limit_usd"]}
    assert expected["runs_out_on"] is not None
    marked = [day for day, v in zip(chart["x"], series[f"runs out {expected['runs_out_on']}"], strict=True) if v]
    assert [datetime.fromtimestamp(x, UTC).date().isoformat() for x in marked] == [expected["runs_out_on"]]
    # The line starts today: nothing before it, and every day from today to the window's end.
    today = chart["x"].index(int(datetime(2026, 11, 18, tzinfo=UTC).timestamp()))
    assert series[PACE][:today] == [None] * today and None not in series[PACE][today:]
    assert len(chart["x"]) == 30


def test_an_admin_resumes_a_suspended_trace_and_a_viewer_cannot_see_it(make_gateway) -> None:
    """Trace scopes (a runaway agent run) are listed, filtered and resumed like the others;
    a trace belongs to no project, so only org admins see and act on it."""
    gateway = make_gateway()
    org_with_traffic(gateway)
    trace = Scope.parse("trace:run-42", ANOMALY_SCOPE_KINDS)
    gateway.store.suspend_scope(trace)
    add_user(gateway, "root", admin=True)
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    with logged_in(gateway, "ann") as client:
        page = client.get("/ui/anomalies?kind=trace")
        assert page.status_code == 200 and "trace:run-42" not in page.text
        token = form_token(page)
        assert client.post("/ui/anomalies/resume", data={"csrf_token": token, "scope": str(trace)}).status_code == 404
    assert [s["scope"] for s in gateway.store.list_suspensions()] == ["trace:run-42"]
    with logged_in(gateway, "root") as client:
        page = client.get("/ui/anomalies?kind=trace")
        assert page.status_code == 200 and "trace:run-42" in page.text
        token = form_token(page)
        assert client.post("/ui/anomalies/resume", data={"csrf_token": token, "scope": str(trace)}).status_code == 303
    assert gateway.store.list_suspensions() == []
