"""`spendgate export focus`: the ledger as a FOCUS 1.2 dataset (finance/focus.py)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from spendgate.cli.support import db_options, json_option, print_json
from spendgate.ledger.store import Store
from spendgate.money import format_usd
from spendgate.pricing.rates import Rates

if TYPE_CHECKING:
    from spendgate.finance.focus import ListRates


# The days an export may span: the store's day arithmetic needs the day after --until.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)


def _day(value: str, option: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value[:40]!r}", param_hint=option) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise click.BadParameter(f"expected a day from {FIRST_DAY} to {LAST_DAY}, got {value}", param_hint=option)
    return day


def list_rates() -> ListRates:
    """List prices (genai-prices with spendgate's supplement, no overrides): ListCost,
    ListUnitPrice and how a group's cost is shared among its token kinds."""
    from spendgate.pricing.book import PriceBook

    book = PriceBook()

    def rates(provider: str, model: str, at: datetime, tier: str | None) -> Rates | None:
        sheet = book.sheet(provider, model, at, tier)
        return None if sheet is None else sheet.base

    return rates


@click.group("export")
def export_group() -> None:
    """Export the ledger in formats other tools import."""


@export_group.command("focus")
@click.option("--since", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--until", required=True, help="Last day, inclusive, YYYY-MM-DD (UTC).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True,
              help="parquet needs the extra: pip install 'spendgate[parquet]'.")  # fmt: skip
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@json_option
@db_options
def export_focus(store: Store, since: str, until: str, fmt: str, out: Path, as_json: bool) -> None:
    """FOCUS 1.2: one row per charge day x provider x model x owner x price x token kind."""
    from spendgate.finance.focus import focus_rows
    from spendgate.finance.focus_files import ParquetUnavailable, pyarrow_modules, write_focus

    first, last = _day(since, "--since"), _day(until, "--until")
    if last < first:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    if fmt == "parquet":
        try:
            pyarrow_modules()  # before the query: say what is missing at once
        except ParquetUnavailable as e:
            raise click.ClickException(str(e)) from None
    groups = store.focus_groups(first, last)
    written = write_focus(focus_rows(groups, store.ledger_id(), list_rates()), out, fmt)
    total = format_usd(written.billed_cost_usd)
    if as_json:
        print_json({"out": str(out), "format": fmt, "rows": written.rows, "billed_cost_usd": total})
    else:
        click.echo(f"wrote {written.rows} FOCUS rows to {out} (BilledCost total {total} USD)", err=True)
