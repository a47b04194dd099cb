"""The weekly summary each team's webhooks receive: the team's spend last ISO week against the
week before, and the three largest changes across its projects, models and features. Every
figure is a ledger ``report`` query (exact Decimal)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.budgets.windows import iso_utc
from spendgate.finance.changes import Change, top_changes
from spendgate.finance.schedule import WEEKLY, parse_week, week_days, week_key
from spendgate.ledger.store import Store
from spendgate.money import format_usd
from spendgate.reports.spec import ReportQuery

CHANGE_DIMENSIONS = ("project", "model", "feature")
PERCENT = Decimal("0.01")


@dataclass(frozen=True)
class TeamWeek:
    team: str
    week: str
    since: date
    until: date  # inclusive
    cost: Decimal
    previous: Decimal
    changes: list[Change]

    @property
    def change_percent(self) -> Decimal | None:
        if not self.previous:
            return None
        return ((self.cost - self.previous) * 100 / self.previous).quantize(PERCENT)

    def payload(self, *, at: datetime, alert_id: str) -> dict[str, Any]:
        percent = self.change_percent
        return {
            "event": WEEKLY,
            "id": alert_id,
            "at": iso_utc(at),
            "team": self.team,
            "week": self.week,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "cost_usd": format_usd(self.cost),
            "previous_week_cost_usd": format_usd(self.previous),
            "change_usd": format_usd(self.cost - self.previous),
            "change_percent": None if percent is None else format_usd(percent),
            "top_changes": [c.as_json() for c in self.changes],
        }


def _spend_by_team(store: Store, since: date, until: date, dim: str | None) -> dict[tuple[Any, Any], Decimal]:
    """(team, value of ``dim``) -> spend; one query for every team at once (value None without ``dim``)."""
    by = ("team",) if dim is None else ("team", dim)
    rows = store.report(ReportQuery(by=by, since=since, until=until)).rows
    return {(row.dims["team"], row.dims[dim] if dim else None): row.cost_usd for row in rows}


def build_weekly(store: Store, week: str, teams: Collection[str]) -> list[TeamWeek]:
    """The summary of ``week`` of each of ``teams``: eight report queries whatever their number."""
    since, until = week_days(parse_week(week))
    week = week_key(since)  # normalized: the key the delivery is recorded under
    weeks = {"current": (since, until), "previous": (since - timedelta(days=7), until - timedelta(days=7))}
    totals = {name: _spend_by_team(store, *days, None) for name, days in weeks.items()}
    by_dim = {
        (name, dim): _spend_by_team(store, *days, dim) for name, days in weeks.items() for dim in CHANGE_DIMENSIONS
    }

    def of_team(name: str, team: str) -> dict[tuple[str, str | None], Decimal]:
        return {
            (dim, value): cost
            for dim in CHANGE_DIMENSIONS
            for (owner, value), cost in by_dim[name, dim].items()
            if owner == team
        }

    return [
        TeamWeek(
            team=team,
            week=week,
            since=since,
            until=until,
            cost=totals["current"].get((team, None), Decimal(0)),
            previous=totals["previous"].get((team, None), Decimal(0)),
            changes=top_changes(of_team("current", team), of_team("previous", team)),
        )
        for team in sorted(set(teams))
    ]
