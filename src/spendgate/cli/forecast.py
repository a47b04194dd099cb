"""`spendgate forecast`: where budgets (or each team, project, key …) will end the period."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from spendgate.budgets.forecasts import budget_forecasts, scope_forecasts
from spendgate.cli.support import db_options, json_option, print_json, print_table
from spendgate.reports.spec import check_dimension

_FIGURES = ["spent_usd", "projected_usd", "low_usd", "high_usd", "runs_out_on"]


@click.command("forecast")
@click.option("--by", default=None, help="A dimension (team, project, key, tag:NAME …) or org: this month per value.")
@json_option
@db_options
def forecast_command(store: Any, by: str | None, as_json: bool) -> None:
    """Budgets' period-end projections (80% interval, run-out day), weekday-aware."""
    now = datetime.now(UTC)
    if by is None:
        rows = budget_forecasts(store, now)
        columns = ["budget", "scope", "window", "limit_usd", "approved_extra_usd", "effective_limit_usd", *_FIGURES]
    else:
        if by != "org":
            check_dimension(by)
        rows = scope_forecasts(store, by, now)
        columns = [by, "window", *_FIGURES[:-1]]
    if as_json:
        print_json(rows)
    else:
        print_table(columns, [[row.get(c) for c in columns] for row in rows])
