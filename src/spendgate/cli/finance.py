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
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html", "pdf"]), default="html", show_default=True)
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File (default: stdout; for pdf, finance-report-YYYY-MM.pdf in the current directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@db_options
def finance_report(store: Store, month: str, fmt: str, out: Path | None, as_json: bool) -> None:
    """Executive summary, cost centers (budget vs actual, year to date), teams, projects, other
    costs, allocation and coverage, anomalies and next month's forecast."""
    from spendgate.finance.formats import MONTHLY_FORMATS
    from spendgate.finance.monthly import build_monthly

    fmt = "json" if as_json else fmt
    report = build_monthly(store, month)
    content = MONTHLY_FORMATS[fmt].render(report)
    if isinstance(content, bytes):  # PDF: never to a terminal
        out = out or Path(f"finance-report-{report.month}.pdf")
    if out is None:
        click.echo(content, nl=False)
        return
    try:
        if isinstance(content, bytes):
            out.write_bytes(content)
        else:
            out.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from exc
    click.echo(f"wrote the {month} finance report to {out}", err=True)
