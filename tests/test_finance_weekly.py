"""The weekly summary (issue 12 item 6) on both backends: each team's last ISO week against the
week before and its three largest changes, equal to `report` queries on crafted data, sent signed
to that team's webhooks only (migration 0013's webhook team), once across two replicas."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spendgate.alerts.dispatcher import AlertDispatcher
from spendgate.cli.main import main
from spendgate.finance.delivery_config import FinanceConfig
from spendgate.finance.delivery_job import FinanceDeliveryJob
from spendgate.finance.schedule import WEEKLY
from spendgate.finance.weekly import build_weekly
from tests.conftest import open_test_store
from tests.finance_support import cli_json, event, ledger, write  # noqa: F401  (ledger: a fixture)
from tests.test_alerts_support import Clock, Receiver, running_receiver, verified

MONDAY = datetime(2026, 11, 30, 0, 10, tzinfo=UTC)  # last week: 2026-W48, 23-29 November
W47, W48 = datetime(2026, 11, 18, 9, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC)


def _spend(ts: datetime, cost: str, team: str, model: str, feature: str | None) -> Any:
    return dataclasses.replace(event(ts, Decimal(cost), team=team, model=model), feature=feature)


def _seed(url: str) -> None:
    write(
        url,
        [
            # alpha, week 47: 10 on gpt-4o-mini/search, 5 on gpt-4o/chat
            _spend(W47, "10", "alpha", "gpt-4o-mini", "search"),
            _spend(datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC), "5", "alpha", "gpt-4o", "chat"),
            # alpha, week 48: search falls to 2, chat grows to 5.5, o3/agent is new at 3.25
            _spend(datetime(2026, 11, 23, tzinfo=UTC), "2", "alpha", "gpt-4o-mini", "search"),
            _spend(W48, "5.500000001", "alpha", "gpt-4o", "chat"),
            _spend(W48, "3.25", "alpha", "o3", "agent"),
            # beta, only week 48; and spend outside both weeks, which no summary counts
            _spend(W48, "0.75", "beta", "gpt-4o", None),
            _spend(datetime(2026, 11, 30, tzinfo=UTC), "99", "alpha", "o3", "agent"),
            _spend(datetime(2026, 11, 15, 23, 59, tzinfo=UTC), "77", "alpha", "o3", "agent"),
        ],
    )


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with running_receiver() as running:
        yield running


def _report_total(ledger: str, team: str, since: str, until: str, by: str = "team") -> dict[Any, Decimal]:  # noqa: F811
    result = cli_json("report", "--by", by, "--since", since, "--until", until, "--where", f"team={team}",
                      "--db", ledger)  # fmt: skip
    return {row[by]: Decimal(row["cost_usd"]) for row in result["rows"]}


def test_the_weekly_figures_are_report_queries(ledger: str) -> None:  # noqa: F811
    _seed(ledger)
    store = open_test_store(ledger)
    try:
        alpha, beta = build_weekly(store, "2026-W48", ["beta", "alpha"])
    finally:
        store.close()
    assert (alpha.team, alpha.since.isoformat(), alpha.until.isoformat()) == ("alpha", "2026-11-23", "2026-11-29")
    assert alpha.cost == _report_total(ledger, "alpha", "2026-11-23", "2026-11-29")["alpha"] == Decimal("10.750000001")
    assert alpha.previous == _report_total(ledger, "alpha", "2026-11-16", "2026-11-22")["alpha"] == Decimal("15")
    assert alpha.change_percent == Decimal("-28.33")
    # The three largest moves by absolute amount: -8 twice (a tie: feature before model), then
    # the project's -4.249999999; o3's +3.25 and chat's +0.5 are smaller.
    assert [(c.dimension, c.value, c.change) for c in alpha.changes] == [
        ("feature", "search", Decimal("-8")),
        ("model", "gpt-4o-mini", Decimal("-8")),
        ("project", "alpha-app", Decimal("-4.249999999")),
    ]
    for change in alpha.changes:
        now = _report_total(ledger, "alpha", "2026-11-23", "2026-11-29", change.dimension)
        before = _report_total(ledger, "alpha", "2026-11-16", "2026-11-22", change.dimension)
        assert (change.cost, change.previous) == (now.get(change.value, 0), before.get(change.value, 0))
    assert (beta.cost, beta.previous, beta.change_percent) == (Decimal("0.75"), Decimal(0), None)
    # A three-way tie of +0.75: by dimension name (feature, model, project).
    assert [(c.dimension, c.value) for c in beta.changes] == [
        ("feature", None), ("model", "gpt-4o"), ("project", "beta-app"),
    ]  # fmt: skip


async def _send_alerts(store: Any) -> None:
    """One dispatcher pass: what is due now is sent."""
    dispatcher = AlertDispatcher(store, lease_seconds=5, timeout=2)
    dispatcher.start()
    await dispatcher.aclose()


async def test_each_team_webhook_gets_its_summary_once(ledger: str, receiver: tuple[Receiver, str]) -> None:  # noqa: F811
    _seed(ledger)
    rx, url = receiver
    stores = [open_test_store(ledger) for _ in range(2)]
    stores[0].add_webhook(f"{url}/alpha", "alpha-secret", "json", "alpha")
    stores[0].add_webhook(f"{url}/beta", "beta-secret", "json", "beta")
    stores[0].add_webhook(f"{url}/everyone", "all-secret", "json")  # no team: no weekly summary
    config = FinanceConfig(weekly_summary=True)
    clock = Clock(MONDAY)
    jobs = [FinanceDeliveryJob(store, config, clock) for store in stores]
    try:
        results = await asyncio.gather(*(job.run_once() for job in jobs))
        assert [o.status for outcomes in results for o in outcomes].count("delivered") == 1
        clock.now += timedelta(days=6)
        assert [o for job in jobs for o in await job.run_once() if o.status != "skipped"] == []
        await asyncio.gather(*(_send_alerts(store) for store in stores))
    finally:
        for job in jobs:
            await job.aclose()
        for store in stores:
            store.close()
    by_path = {r.path: r for r in rx.requests}
    assert sorted(by_path) == ["/alpha", "/beta"] and len(rx.requests) == 2
    alpha = by_path["/alpha"]
    assert verified(alpha.body, alpha.headers["x-spendgate-signature"], "alpha-secret")
    assert alpha.headers["x-spendgate-event"] == WEEKLY
    body = alpha.json()
    assert {k: body[k] for k in ("event", "team", "week", "since", "until")} == {
        "event": WEEKLY, "team": "alpha", "week": "2026-W48", "since": "2026-11-23", "until": "2026-11-29",
    }  # fmt: skip
    assert (body["cost_usd"], body["previous_week_cost_usd"], body["change_percent"]) == (
        "10.750000001", "15", "-28.33",
    )  # fmt: skip
    assert body["top_changes"][0] == {
        "dimension": "feature", "value": "search", "cost_usd": "2", "previous_cost_usd": "10", "change_usd": "-8",
    }  # fmt: skip
    assert by_path["/beta"].json()["team"] == "beta"
    assert verified(by_path["/beta"].body, by_path["/beta"].headers["x-spendgate-signature"], "beta-secret")


def test_webhook_team_and_deliver_by_hand(ledger: str, receiver: tuple[Receiver, str], tmp_path: Path) -> None:  # noqa: F811
    _seed(ledger)
    rx, url = receiver
    runner = CliRunner()
    refused = runner.invoke(main, ["webhooks", "add", f"{url}/x", "--team", "nobody", "--db", ledger])
    assert refused.exit_code == 1 and "unknown team 'nobody'" in refused.output
    hook = cli_json("webhooks", "add", f"{url}/alpha", "--team", "alpha", "--db", ledger)
    assert hook["team"] == "alpha"
    assert [h["team"] for h in cli_json("webhooks", "list", "--db", ledger)] == ["alpha"]
    out = tmp_path / "finance"
    config = tmp_path / "spendgate.toml"
    config.write_text(f'[finance]\ndeliver_to = "{out}"\nformats = ["csv"]\nstatements_by = ["customer"]\n')
    args = ["finance", "deliver", "--db", ledger, "--config", str(config)]
    assert [o["status"] for o in cli_json(*args, "--month", "2026-11", "--weekly", "2026-w48")] == [
        "delivered", "delivered",
    ]  # fmt: skip
    assert [o["status"] for o in cli_json(*args, "--month", "2026-11", "--weekly", "2026-W48")] == [
        "skipped", "skipped",
    ]  # fmt: skip
    assert [o["status"] for o in cli_json(*args, "--weekly", "2026-W48", "--force")] == ["delivered"]
    assert sorted(p.name for p in (out / "2026-11").rglob("*.csv")) == [
        "2026-11-customer-_unassigned.csv", "finance-report-2026-11.csv",
    ]  # fmt: skip
    assert [r.json()["week"] for r in rx.requests] == ["2026-W48", "2026-W48"]  # once, then once more by --force
    bad = runner.invoke(main, [*args, "--weekly", "2026-W54"])
    assert bad.exit_code == 2 and "2026 has no week 54" in bad.output
    bare = tmp_path / "bare.toml"
    bare.write_text("")
    for refused_args, message in (
        (["--month", "2026-11"], "--month needs [finance] deliver_to"),
        (["--force"], "--force needs --month or --weekly"),
        ([], "nothing scheduled"),
    ):
        result = runner.invoke(main, ["finance", "deliver", "--db", ledger, "--config", str(bare), *refused_args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_slack_webhooks_get_a_line_with_the_figures() -> None:
    from spendgate.alerts.rules import slack_body

    payload = {
        "event": WEEKLY, "id": "alrt_1", "at": "2026-11-30T00:00:00Z", "team": "alpha", "week": "2026-W48",
        "cost_usd": "10.75", "previous_week_cost_usd": "15",
        "top_changes": [{"dimension": "feature", "value": None, "change_usd": "-8"}],
    }  # fmt: skip
    assert slack_body(payload)["text"] == (
        "Team alpha spent $10.75 in 2026-W48 (week before: $15). Largest changes: feature (none) -8."
    )


def test_a_team_webhook_hears_only_its_own_teams_alerts(ledger: str) -> None:  # noqa: F811
    """Team webhooks exist for the weekly summary; they must not hear other teams' spend. The
    org's webhooks hear every budget and anomaly alert; a team's hears its own team's alerts."""
    from spendgate.anomalies.record import Anomaly

    _seed(ledger)
    store = open_test_store(ledger)
    try:
        hooks = {
            name: store.add_webhook(f"https://example.com/{name}", None, "json", team)["id"]
            for name, team in (("org", None), ("alpha", "alpha"), ("beta", "beta"))
        }
        heard_by = {hook: name for name, hook in hooks.items()}

        def record(alert_id: str, **audience: Any) -> None:
            assert store.record_alert("budget.threshold_crossed", alert_id, "2026-11", 80, {"id": alert_id}, **audience)

        record("al_org")
        record("al_alpha", team="alpha")
        record("al_weekly", team="beta", team_only=True)
        for n, scope in enumerate(("team:alpha", "project:chat")):
            anomaly = Anomaly(scope, W48, W48 + timedelta(hours=1), Decimal(9), Decimal(1), Decimal(8))
            store.record_anomaly(
                anomaly, merge_gap=timedelta(minutes=30), source="live", now=W48, alert_id=f"al_anomaly_{n}"
            )
        due = store.claim_deliveries(W48 + timedelta(days=30), 100, 60)
        heard: dict[str, set[str]] = {}
        for delivery in due:
            heard.setdefault(delivery.alert_id, set()).add(heard_by[delivery.webhook_id])
    finally:
        store.close()
    assert heard == {
        "al_org": {"org"},
        "al_alpha": {"org", "alpha"},
        "al_weekly": {"beta"},
        "al_anomaly_0": {"org", "alpha"},  # team:alpha's anomaly
        "al_anomaly_1": {"org"},
    }
