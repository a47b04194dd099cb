"""The monthly finance report's figures, every one a ledger ``report`` query (exact Decimal;
rounding is the renderers' job, ``finance/rounding.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.attribution.model import UNALLOCATED
from spendgate.budgets.forecast import forecast_window
from spendgate.budgets.windows import Window
from spendgate.finance.allocated import allocated_report
from spendgate.finance.allocation import coverage_percent
from spendgate.ledger.store import Store
from spendgate.money import format_usd
from spendgate.reports.spec import ReportError, ReportQuery

DRIVER_DIMENSIONS = ("team", "project", "model")
TOP_DRIVERS = 3
FORECAST_HISTORY_DAYS = 28
PERCENT = Decimal("0.01")


def parse_month(text: str) -> date:
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except ValueError:
        raise ReportError(f"bad --month {text[:40]!r}: expected YYYY-MM") from None


def month_end(first: date) -> date:
    """The month's last day."""
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


@dataclass
class MonthlyReport:
    month: str
    total: Decimal
    previous: Decimal
    drivers: list[dict[str, Any]]
    cost_centers: list[dict[str, Any]]
    teams: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    other_costs: list[dict[str, Any]]
    coverage: Decimal | None
    allocation: dict[str, Any]
    forecast: dict[str, Any]
    anomalies: list[dict[str, Any]] = field(default_factory=list)  # the store's JSON (exact strings)
    approvals: list[dict[str, Any]] = field(default_factory=list)  # approved extra spend, decided in the month
    ledger_id: str = ""

    @property
    def change_percent(self) -> Decimal | None:
        if not self.previous:
            return None
        return ((self.total - self.previous) * 100 / self.previous).quantize(PERCENT)

    @property
    def other_costs_total(self) -> Decimal:
        return sum((c["cost_usd"] for c in self.other_costs), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        def usd(value: Decimal | None) -> str | None:
            return None if value is None else format_usd(value)

        def lines(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: usd(v) if isinstance(v, Decimal) else v for k, v in item.items()} for item in items]

        change = self.change_percent
        coverage = None if self.coverage is None else format_usd(self.coverage.quantize(PERCENT))
        return {
            "month": self.month,
            "ledger_id": self.ledger_id,
            "total_cost_usd": usd(self.total),
            "previous_month_cost_usd": usd(self.previous),
            "change_percent": None if change is None else format_usd(change),
            "top_drivers": lines(self.drivers),
            "cost_centers": lines(self.cost_centers),
            "teams": lines(self.teams),
            "projects": lines(self.projects),
            "other_costs_usd": usd(self.other_costs_total),
            "other_costs": lines(self.other_costs),
            "allocation_coverage_percent": coverage,
            "allocation": self.allocation,
            "anomalies": self.anomalies,
            "approvals": self.approvals,
            "forecast_next_month_usd": usd(self.forecast["projected_usd"]),
            "forecast": {k: usd(v) if isinstance(v, Decimal) else v for k, v in self.forecast.items()},
        }


def _by(store: Store, by: tuple[str, ...], first: date, last: date, **kw: Any) -> dict[tuple[Any, ...], Decimal]:
    result = store.report(ReportQuery(by=by, since=first, until=last, **kw))
    return {tuple(row.dims[d] for d in by): row.cost_usd for row in result.rows}


def build_monthly(store: Store, month: str) -> MonthlyReport:
    first = parse_month(month)
    last = month_end(first)
    prev_first = (first - timedelta(days=1)).replace(day=1)
    prev_last = first - timedelta(days=1)
    total = store.report(ReportQuery(since=first, until=last)).total_cost_usd
    previous = store.report(ReportQuery(since=prev_first, until=prev_last)).total_cost_usd

    drivers = []
    for dim in DRIVER_DIMENSIONS:
        now_spend = _by(store, (dim,), first, last)
        then_spend = _by(store, (dim,), prev_first, prev_last)
        for key in set(now_spend) | set(then_spend):
            cost, before = now_spend.get(key, Decimal(0)), then_spend.get(key, Decimal(0))
            drivers.append(
                {
                    "dimension": dim,
                    "value": UNALLOCATED if dim == "project" and key[0] is None else key[0],
                    "cost_usd": cost,
                    "previous_cost_usd": before,
                    "change_usd": cost - before,
                }
            )
    drivers.sort(key=lambda d: (-abs(d["change_usd"]), d["dimension"], str(d["value"])))

    centers = _by(store, ("cost_center",), first, last)
    ytd = _by(store, ("cost_center",), first.replace(month=1), last)
    budgets = _center_budgets(store)
    cost_centers = [
        {
            "cost_center": key[0],
            "cost_usd": centers.get(key, Decimal(0)),
            "budget_usd": budgets.get(key[0]),
            "budget_remaining_usd": None if key[0] not in budgets else budgets[key[0]] - centers.get(key, Decimal(0)),
            "ytd_cost_usd": ytd.get(key, Decimal(0)),
        }
        for key in sorted(set(centers) | set(ytd) | {(c,) for c in budgets}, key=lambda k: (k[0] is None, k[0] or ""))
    ]
    teams = [{"team": k[0], "cost_usd": v} for k, v in _sorted(_by(store, ("team",), first, last))]
    projects = [
        {"project": k[0] or UNALLOCATED, "team": k[1], "cost_usd": v}
        for k, v in _sorted(_by(store, ("project", "team"), first, last))
    ]
    other = _by(store, ("model", "team"), first, last, where=(("source", ("manual",)),))
    other_costs = [{"category": k[0], "team": k[1], "cost_usd": v} for k, v in _sorted(other)]

    direct_by_team = {k[0]: v for k, v in _by(store, ("team",), first, last).items()}
    allocated = allocated_report(store, ReportQuery(by=("team",), since=first, until=last))
    allocation = allocated.as_json()
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    return MonthlyReport(
        month=month,
        total=total,
        previous=previous,
        drivers=drivers[:TOP_DRIVERS],
        cost_centers=cost_centers,
        teams=teams,
        projects=projects,
        other_costs=other_costs,
        coverage=coverage_percent(direct_by_team),
        allocation={k: allocation[k] for k in ("rules_applied", "rows", "largest_unallocated_pools")},
        forecast=_forecast(store, first, last),
        anomalies=store.list_anomalies(start, None, until=end),
        approvals=store.approvals_decided("approved", start, end),
        ledger_id=store.ledger_id(),
    )


def _sorted(spend: dict[tuple[Any, ...], Decimal]) -> list[tuple[tuple[Any, ...], Decimal]]:
    return sorted(spend.items(), key=lambda kv: (-kv[1], [str(v or "") for v in kv[0]]))


def _center_budgets(store: Store) -> dict[str, Decimal]:
    """Monthly budgets per cost center: the month budgets of its teams, summed (budgets are
    set on teams; a cost center is the teams' finance key)."""
    centers = {team.name: team.cost_center for team in store.list_teams() if team.cost_center}
    out: dict[str, Decimal] = {}
    for budget in store.list_budgets():
        if budget.period == "month" and budget.scope.kind == "team" and budget.scope.value in centers:
            center = centers[budget.scope.value]
            out[center] = out.get(center, Decimal(0)) + budget.limit_usd
    return out


def _forecast(store: Store, first: date, last: date) -> dict[str, Any]:
    """Next month from the last FORECAST_HISTORY_DAYS days of this one (budgets/forecast.py:
    weekday profile x recent level)."""
    history_first = last - timedelta(days=FORECAST_HISTORY_DAYS - 1)
    daily = {date.fromisoformat(k[0]): v for k, v in _by(store, ("day",), history_first, last).items()}
    start = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    end_day = month_end(start.date()) + timedelta(days=1)
    window = Window(start.strftime("%Y-%m"), start, datetime.combine(end_day, datetime.min.time(), UTC))
    forecast = forecast_window(daily, Decimal(0), window, "UTC", start, history_start=min(daily, default=None))
    assert forecast is not None
    return {
        "month": window.key,
        "projected_usd": forecast.projected_usd,
        "low_usd": forecast.low_usd,
        "high_usd": forecast.high_usd,
        "method": (
            f"budgets/forecast.py on the daily spend of {history_first} to {last}: each weekday's mean (capped) as a"
            " factor around a recent daily level, summed over next month's days; 80% interval from the history's noise"
        ),
    }
