"""The runaway-trace rule (anomalies/traces.py), trace scopes and the gateway's trace
suspension lookup: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendgate.anomalies import synthetic as syn
from spendgate.anomalies.params import AnomalyParams, TraceParams
from spendgate.anomalies.traces import (
    build_reference,
    judge_trace,
    longest_sustained,
    percentile,
    runaway_traces,
)
from spendgate.attribution import Attribution
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, BudgetError, Scope
from spendgate.budgets.rules import Rules, Suspension, split_suspensions
from spendgate.settings import SettingsError, load_settings

T0 = datetime(2026, 11, 17, 14, 0, tzinfo=UTC)
PARAMS = TraceParams()


def _calls(per_minute: int, minutes: int, usd: str) -> list[tuple[datetime, Decimal]]:
    step = 60 // per_minute
    return [
        (T0 + timedelta(minutes=m, seconds=step * c), Decimal(usd)) for m in range(minutes) for c in range(per_minute)
    ]


def test_percentile_is_the_nearest_rank_value_exactly() -> None:
    values = [Decimal(n) / 100 for n in range(1, 201)]  # 0.01 … 2.00
    assert percentile(values, 99) == Decimal("1.98")
    assert percentile(values, 50) == Decimal("1.00")
    assert percentile([Decimal("0.3")], 99) == Decimal("0.3")


def test_the_reference_falls_back_from_feature_to_project_to_every_trace() -> None:
    totals = [("chat", "web", Decimal("0.10"))] * 60 + [("rare", "web", Decimal("5"))] * 3
    totals += [(None, "batch", Decimal("0.50"))] * 10
    reference = build_reference(totals, PARAMS)
    assert reference.for_trace("chat", "web") == Decimal("0.10")
    # Three "rare" traces are too few: its project's percentile (63 traces) serves.
    assert reference.for_trace("rare", "web") == Decimal(5)
    # A project with ten traces: every trace's (73) serves.
    assert reference.for_trace(None, "batch") == Decimal(5)
    assert build_reference(totals[:10], PARAMS).for_trace("chat", "web") is None


def test_longest_sustained_counts_consecutive_minutes_only() -> None:
    counts = {T0: 12, T0 + timedelta(minutes=1): 11, T0 + timedelta(minutes=3): 15, T0 + timedelta(minutes=4): 3}
    assert longest_sustained(counts, 10) == 2
    assert longest_sustained(counts, 2) == 2
    assert longest_sustained({}, 10) == 0


def test_a_trace_past_ten_times_its_percentile_is_runaway_whatever_its_pace() -> None:
    slow = _calls(1, 30, "0.50")  # $15 over half an hour, one call a minute
    verdict = judge_trace("t", slow, Decimal("1.20"), PARAMS)
    assert verdict.reason == "cost" and verdict.cost == Decimal(15)
    assert verdict.score == Decimal("12.50") and verdict.start == T0
    assert not judge_trace("t", slow, Decimal("1.60"), PARAMS).flagged  # $15 < 10 x $1.60


def test_a_fast_sustained_trace_past_its_percentile_is_runaway() -> None:
    loop = _calls(12, 3, "0.05")  # $1.80: 12 a minute for 3 minutes
    assert judge_trace("t", loop, Decimal("1.20"), PARAMS).reason == "rate"
    # Two minutes are not sustained; past the percentile is needed too; and the dollar floor.
    assert not judge_trace("t", loop[:24], Decimal("0.50"), PARAMS).flagged
    assert not judge_trace("t", loop, Decimal("2.00"), PARAMS).flagged
    assert not judge_trace("t", _calls(12, 3, "0.02"), Decimal("0.10"), PARAMS).flagged  # $0.72


def test_without_a_reference_the_absolute_threshold_and_the_rate_decide() -> None:
    assert judge_trace("t", _calls(1, 10, "2.00"), None, PARAMS).reason == "cost"  # $20
    assert not judge_trace("t", _calls(1, 10, "1.90"), None, PARAMS).flagged  # $19, slow
    assert judge_trace("t", _calls(12, 3, "0.05"), None, PARAMS).reason == "rate"


def test_no_trace_of_the_synthetic_history_is_runaway_and_the_loop_is() -> None:
    start = datetime(2026, 10, 3, tzinfo=UTC)
    shape = syn.ScopeShape(peak_requests_per_hour=40, request_median_usd=0.09)
    history = syn.synthetic_requests(7, start, 14, shape)
    week, today = [r for r in history if r.at < start + timedelta(days=7)], [r for r in history if r.at.day > 9]
    totals: dict[str, tuple[str, Decimal]] = {}
    for r in week:
        feature, cost = totals.get(r.trace, (r.feature, Decimal(0)))
        totals[r.trace] = (feature, cost + r.cost)
    reference = build_reference([(f, "support", c) for f, c in totals.values()], PARAMS)

    def events(requests: list[syn.SyntheticRequest]) -> list[dict]:
        return [
            {"ts": r.at, "cost": r.cost, "trace": r.trace, "feature": r.feature, "project": "support"} for r in requests
        ]

    assert runaway_traces(events(today), reference, PARAMS) == []
    # $60 an hour for four minutes: $4, past the p99 of triage runs (~$2.17) and sustained.
    loop = syn.runaway_loop(1, start + timedelta(days=13, hours=14), 4, Decimal(60))
    [(verdict, mine)] = runaway_traces(events(today + loop), reference, PARAMS)
    assert verdict.trace == "trace-runaway" and len(mine) == len(loop) == 48


def test_trace_scopes_are_for_anomalies_not_budgets() -> None:
    with pytest.raises(BudgetError):
        Scope.parse("trace:run-1")
    scope = Scope.parse("trace:run-1", ANOMALY_SCOPE_KINDS)
    owner = Attribution(project=None, team=None, cost_center=None, environment=None, key="k", trace_id="run-1")
    assert str(scope) == "trace:run-1" and scope.matches(owner)
    assert str(Scope.parse("trace:*", ANOMALY_SCOPE_KINDS)) == "trace:*"


def test_a_suspended_trace_is_looked_up_and_lapses() -> None:
    traces = [Suspension(Scope("trace", f"run-{n}"), f"anom_{n}", T0 + timedelta(hours=24)) for n in range(1000)]
    scopes, by_trace = split_suspensions([*traces, Suspension(Scope("key", "bot"), None)])
    rules = Rules(suspensions=scopes, trace_suspensions=by_trace)
    assert [str(s.scope) for s in rules.suspensions] == ["key:bot"] and len(rules.trace_suspensions) == 1000

    def owner(key: str, trace: str | None) -> Attribution:
        return Attribution(project=None, team=None, cost_center=None, environment=None, key=key, trace_id=trace)

    found = rules.suspension_for(owner("web", "run-7"), T0)
    assert found is not None and found.anomaly_id == "anom_7"
    assert rules.suspension_for(owner("web", "run-other"), T0) is None
    assert rules.suspension_for(owner("web", None), T0) is None
    # A lapsed suspension refuses nothing, even before the live check deletes it.
    assert rules.suspension_for(owner("web", "run-7"), T0 + timedelta(hours=24)) is None
    # The key's suspension holds for all its traces.
    assert str(rules.suspension_for(owner("bot", "run-other"), T0).scope) == "key:bot"


@pytest.mark.parametrize(
    "changes",
    [
        {"min_cost_usd": Decimal(0)},
        {"cost_percentile": 20},
        {"cost_multiple": Decimal("0.5")},
        {"rate_per_minute": 1},
        {"rate_minutes": 0},
        {"reference_days": 0},
        {"no_reference_cost_usd": Decimal("0.5")},
    ],
)
def test_trace_params_refuse_nonsense(changes: dict) -> None:
    with pytest.raises(ValueError):
        TraceParams(**changes)


@pytest.mark.parametrize("hours", ["0", "-1", "721", "nan", "inf"])
def test_trace_suspension_hours_is_bounded(hours: str) -> None:
    with pytest.raises(SettingsError, match="trace_suspension_hours"):
        load_settings(environ={"SPENDGATE_TRACE_SUSPENSION_HOURS": hours})
    assert load_settings(environ={"SPENDGATE_TRACE_SUSPENSION_HOURS": "1.5"}).trace_suspension_hours == 1.5


def test_features_and_customers_are_floored_at_twice_an_unusual_run() -> None:
    params = AnomalyParams()
    assert params.for_runs(Decimal("1.9")).min_impact_usd == Decimal("3.8")
    assert params.for_runs(Decimal("0.2")).min_impact_usd == Decimal(1)  # never below the $1 floor
    assert params.for_runs(None) is params
    with pytest.raises(ValueError):
        AnomalyParams(run_impact_multiple=Decimal(-1))
