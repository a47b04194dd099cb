"""`spendgate forecast` on both backends: 30 days of synthetic history in the ledger, this
month's requests through the SDK, and the forecast per budget (spent exact, the interval
around the projection, the run-out day of a budget too small) and per team."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from click.testing import CliRunner

from spendgate.anomalies import synthetic as syn
from spendgate.budgets.model import Budget, Scope
from spendgate.cli.main import main
from tests.conftest import Gateway
from tests.test_anomalies_live import _append, _events

SMALL = syn.ScopeShape(peak_requests_per_hour=6, request_median_usd=0.05)


def test_forecast_per_budget_and_per_team(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(anomaly_interval=0)
    gateway.team("cx")
    gateway.project("support", "cx")
    secret = gateway.key("support-bot", project="support")
    now = datetime.now(UTC)
    start = datetime.combine(now.date() - timedelta(days=30), datetime.min.time(), UTC)
    history = [r for r in syn.synthetic_requests(5, start, 31, SMALL) if r.at < now - timedelta(minutes=5)]
    _append(gateway.store, _events(history, "h"))
    gateway.store.create_budget(
        Budget(name="cx-month", scope=Scope.parse("team:cx"), limit_usd=Decimal("0.01"), soft=True)
    )
    gateway.store.create_budget(Budget(name="cx-big", scope=Scope.parse("team:cx"), limit_usd=Decimal("100000")))
    gateway.wait_for_directory()
    client = gateway.openai(secret)
    for _ in range(2):  # the tiny budget is soft: it alerts, it does not refuse
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    gateway.flush()

    result = CliRunner().invoke(main, ["forecast", "--json", "--db", gateway.db_url])
    assert result.exit_code == 0, result.output
    rows = {row["budget"]: row for row in json.loads(result.output)}
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    exact = gateway.store.spend(Scope.parse("team:cx"), month_start, datetime.now(UTC) + timedelta(seconds=1))
    big = rows["cx-big"]
    assert Decimal(big["spent_usd"]) == exact
    assert Decimal(big["low_usd"]) <= Decimal(big["projected_usd"]) <= Decimal(big["high_usd"])
    assert Decimal(big["projected_usd"]) >= exact and big["runs_out_on"] is None and not big["overrun"]
    assert rows["cx-month"]["runs_out_on"] == datetime.now(UTC).date().isoformat()  # already spent
    assert rows["cx-month"]["overrun"]

    result = CliRunner().invoke(main, ["forecast", "--by", "team", "--json", "--db", gateway.db_url])
    assert result.exit_code == 0, result.output
    [team] = json.loads(result.output)
    assert team["team"] == "cx" and Decimal(team["projected_usd"]) >= Decimal(team["spent_usd"]) > 0
    bad = CliRunner().invoke(main, ["forecast", "--by", "nope", "--db", gateway.db_url])
    assert bad.exit_code != 0 and "unknown dimension" in bad.output


def _forecasts(gateway: Gateway) -> dict[str, dict]:
    result = CliRunner().invoke(main, ["forecast", "--json", "--db", gateway.db_url])
    assert result.exit_code == 0, result.output
    return {row["budget"]: row for row in json.loads(result.output)}


def test_forecast_is_judged_against_the_effective_limit(make_gateway: Callable[..., Gateway]) -> None:
    """A budget on course to overrun its limit is not once extra spend is approved for the
    window: `forecast` and `budgets status` project against limit + approved extra."""
    gateway = make_gateway(anomaly_interval=0)
    gateway.team("cx")
    gateway.project("support", "cx")
    secret = gateway.key("support-bot", project="support")
    now = datetime.now(UTC)
    start = datetime.combine(now.date() - timedelta(days=30), datetime.min.time(), UTC)
    history = [r for r in syn.synthetic_requests(7, start, 31, SMALL) if r.at < now - timedelta(minutes=5)]
    _append(gateway.store, _events(history, "h"))
    scope = Scope.parse("team:cx")
    gateway.store.create_budget(Budget(name="cx-probe", scope=scope, limit_usd=Decimal("1000000"), soft=True))
    gateway.wait_for_directory()
    gateway.openai(secret).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    gateway.flush()
    probe = _forecasts(gateway)["cx-probe"]
    spent, projected = Decimal(probe["spent_usd"]), Decimal(probe["projected_usd"])
    assert projected > spent  # the rest of the month is expected to spend

    # Half-way between what is spent and where the month is headed: an overrun, on a day.
    limit = (spent + (projected - spent) / 2).quantize(Decimal("0.000001"))
    gateway.store.create_budget(Budget(name="cx-tight", scope=scope, limit_usd=limit, soft=True))
    tight = _forecasts(gateway)["cx-tight"]
    assert tight["overrun"] and tight["runs_out_on"] is not None
    assert (tight["approved_extra_usd"], Decimal(tight["effective_limit_usd"])) == ("0", limit)

    window = json.loads(CliRunner().invoke(main, ["budgets", "list", "--json", "--db", gateway.db_url]).output)
    key = next(b["window"] for b in window if b["name"] == "cx-tight")
    approval = gateway.store.request_approval("cx-tight", key, str(scope), now)
    gateway.store.decide_approval(approval["id"], "approved", now, extra=projected, reason="planned launch")
    tight = _forecasts(gateway)["cx-tight"]
    assert Decimal(tight["approved_extra_usd"]) == projected
    assert Decimal(tight["effective_limit_usd"]) == limit + projected
    assert not tight["overrun"] and tight["runs_out_on"] is None

    result = CliRunner().invoke(main, ["budgets", "status", "cx-tight", "--json", "--db", gateway.db_url])
    assert result.exit_code == 0, result.output
    [status] = json.loads(result.output)
    assert Decimal(status["effective_limit_usd"]) == limit + projected
    assert status["forecast"]["overrun"] is False and status["forecast"]["runs_out_on"] is None
    assert Decimal(status["remaining_usd"]) == limit + projected - Decimal(status["spent_usd"])
