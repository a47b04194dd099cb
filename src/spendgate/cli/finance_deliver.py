"""`spendgate finance deliver`: the scheduled finance delivery run by hand (finance/delivery_job.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click

from spendgate.cli.support import db_options, json_option, print_json
from spendgate.ledger.store import Store
from spendgate.settings import Settings


@click.command("deliver")
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
