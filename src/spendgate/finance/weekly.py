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


def _spend(store: Store, team: str, since: date, until: date, dim: str | None) -> dict[Any, Decimal]:
    by = ("team",) if dim is None else ("team", dim)
    query = ReportQuery(by=by, since=since, until=until, where=(("team", (team,)),))
    return {row.dims.get(dim) if dim else None: row.cost_usd for row in store.report(query).rows}


def build_team_week(store: Store, team: str, week: str) -> TeamWeek:
    since, until = week_days(parse_week(week))
    before_since, before_until = since - timedelta(days=7), until - timedelta(days=7)
    current: dict[tuple[str, str | None], Decimal] = {}
    previous: dict[tuple[str, str | None], Decimal] = {}
    for dim in CHANGE_DIMENSIONS:
        current.update({(dim, v): c for v, c in _spend(store, team, since, until, dim).items()})
        previous.update({(dim, v): c for v, c in _spend(store, team, before_since, before_until, dim).items()})
    return TeamWeek(
        team=team,
        week=week,
        since=since,
        until=until,
        cost=sum(_spend(store, team, since, until, None).values(), Decimal(0)),
        previous=sum(_spend(store, team, before_since, before_until, None).values(), Decimal(0)),
        changes=top_changes(current, previous),
    )


def build_weekly(store: Store, week: str, teams: Collection[str]) -> list[TeamWeek]:
    week = week_key(parse_week(week))  # normalized: the key the delivery is recorded under
    return [build_team_week(store, team, week) for team in sorted(set(teams))]
