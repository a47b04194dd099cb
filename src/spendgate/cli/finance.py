"""`spendgate finance report`: the monthly finance report (finance/monthly.py)."""

from __future__ import annotations

from pathlib import Path

import click

from spendgate.cli.support import db_options
from spendgate.ledger.store import Store


@click.group()
def finance() -> None:
    """Finance deliverables: the monthly report."""


@finance.command("report")
@click.option("--month", required=True, help="The month, YYYY-MM (UTC).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html"]), default="html", show_default=True)
@click.option(
    "--out", "out", default=None, type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@db_options
def finance_report(store: Store, month: str, fmt: str, out: Path | None, as_json: bool) -> None:
    """Executive summary, cost centers (budget vs actual, year to date), teams, projects, other
    costs, allocation and coverage, anomalies and next month's forecast."""
    from spendgate.finance.monthly import build_monthly
    from spendgate.finance.monthly_render import monthly_csv, monthly_html, monthly_json

    fmt = "json" if as_json else fmt
    report = build_monthly(store, month)
    text = {"json": monthly_json, "csv": monthly_csv, "html": monthly_html}[fmt](report)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote the {month} finance report to {out}", err=True)
