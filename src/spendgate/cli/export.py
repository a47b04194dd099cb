"""`spendgate export focus`: the ledger as a FOCUS 1.2 dataset (finance/focus.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import click

from spendgate.cli.support import db_options, json_option, print_json
from spendgate.ledger.store import Store
from spendgate.money import format_usd
from spendgate.reports.csv_export import SafeWriter


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value[:40]!r}", param_hint=option) from None


def list_pricer() -> object:
    """List prices (genai-prices with spendgate's supplement, no overrides), for ListCost."""
    from spendgate.pricing.book import PriceBook
    from spendgate.pricing.rates import cost
    from spendgate.usage.model import Usage

    book = PriceBook()

    def price(provider: str, model: str, usage: Mapping[str, int], at: datetime, tier: str | None) -> Decimal | None:
        sheet = book.sheet(provider, model, at, tier)
        return None if sheet is None else cost(Usage(**usage), sheet.base)

    return price


@click.group("export")
def export_group() -> None:
    """Export the ledger in formats other tools import."""


@export_group.command("focus")
@click.option("--since", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--until", required=True, help="Last day, inclusive, YYYY-MM-DD (UTC).")
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@json_option
@db_options
def export_focus(store: Store, since: str, until: str, fmt: str, out: Path, as_json: bool) -> None:
    """FOCUS 1.2: one row per charge day x provider x model x owner x price."""
    from spendgate.finance.focus import COLUMNS, focus_rows

    first, last = _day(since, "--since"), _day(until, "--until")
    if last < first:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    groups = store.focus_groups(first, last)
    written = 0
    total = Decimal(0)
    with out.open("w", newline="", encoding="utf-8") as f:
        # Through the exports' one CSV writer: names from requests cannot run as formulas.
        writer = SafeWriter(f)
        writer.writerow(COLUMNS)
        for row in focus_rows(groups, store.ledger_id(), list_pricer()):  # type: ignore[arg-type]
            writer.writerow(row.get(name) for name in COLUMNS)
            total += Decimal(row["BilledCost"] or 0)
            written += 1
    if as_json:
        print_json({"out": str(out), "rows": written, "billed_cost_usd": format_usd(total)})
    else:
        click.echo(f"wrote {written} FOCUS rows to {out} (BilledCost total {format_usd(total)} USD)", err=True)
