"""`spendgate finance report`: the monthly finance report (finance/monthly.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from spendgate.cli.support import db_options, json_option, print_json
from spendgate.ledger.store import Store
from spendgate.settings import Settings


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


@finance.command("deliver")
@click.option("--month", default=None, help="Deliver this month's report and statements, YYYY-MM (UTC).")
@click.option("--weekly", "week", default=None, help="Send this ISO week's team summaries, YYYY-Www.")
@click.option("--force", is_flag=True, help="Deliver again even if it was delivered (or given up) before.")
@json_option
@db_options(with_settings=True)
def finance_deliver(
    store: Store, month: str | None, week: str | None, force: bool, as_json: bool, settings: Settings
) -> None:
    """Run the scheduled finance delivery now ([finance] in the config): without --month or
    --weekly, whatever is due (as `serve` does each minute); with them, those periods. Each
    period is delivered once across every replica; weekly summaries go out with every other
    webhook delivery due now."""
    from spendgate.finance.monthly import parse_month
    from spendgate.finance.schedule import MONTHLY, WEEKLY, ScheduleError, parse_week, week_key

    config = settings.finance
    if month is not None:
        month = parse_month(month).strftime("%Y-%m")
        if not config.deliver_to:
            raise click.UsageError("--month needs [finance] deliver_to (a directory or webhook URL) in the config")
    if week is not None:
        try:
            week = week_key(parse_week(week))
        except ScheduleError as exc:
            raise click.BadParameter(str(exc), param_hint="--weekly") from exc
    if force and month is None and week is None:
        raise click.UsageError("--force needs --month or --weekly (the period to deliver again)")
    todo = [(MONTHLY, month)] * (month is not None) + [(WEEKLY, week)] * (week is not None)
    if not todo and not (config.monthly or config.weekly_summary):
        raise click.UsageError(
            "nothing scheduled: set [finance] deliver_to or weekly_summary, or pass --month/--weekly"
        )
    outcomes = asyncio.run(_deliver(store, settings, todo, force))
    if as_json:
        print_json([o.as_json() for o in outcomes])
    else:
        for o in outcomes:
            click.echo(f"{o.kind} {o.period}: {o.status}" + (f" ({o.detail})" if o.detail else ""))
        if not outcomes:
            click.echo("nothing due")
    if any(o.status in ("failed", "retrying") for o in outcomes):
        raise click.ClickException("a delivery failed (see above); it is retried by `serve`, or run this again")


async def _deliver(store: Store, settings: Settings, todo: list[tuple[str, str]], force: bool) -> list[Any]:
    from spendgate.alerts.dispatcher import AlertDispatcher
    from spendgate.finance.delivery_job import FinanceDeliveryJob
    from spendgate.secretbox import SecretBox

    job = FinanceDeliveryJob(store, settings.finance, lambda: datetime.now(UTC))
    try:
        outcomes = [await job.deliver(kind, period, force=force) for kind, period in todo] or await job.run_once()
    finally:
        await job.aclose()
    # The weekly summaries are alerts: sent now, with whatever else is due, by one dispatcher pass.
    dispatcher = AlertDispatcher(store, secrets=SecretBox(settings.encryption_key))
    dispatcher.start()
    await dispatcher.aclose()
    return outcomes
