"""`spendgate statements`: one chargeback or customer statement per owner (finance/statements.py)."""

from __future__ import annotations

from pathlib import Path

import click

from spendgate.cli.support import db_options, json_option, print_json
from spendgate.ledger.store import Store
from spendgate.money import format_usd


@click.command("statements")
@click.option("--month", required=True, help="The month, YYYY-MM (UTC).")
@click.option("--by", "by", required=True, type=click.Choice(["team", "cost_center", "customer"]))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "pdf"]), default="csv", show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory.")
@json_option
@db_options
def statements_command(store: Store, month: str, by: str, fmt: str, out: Path, as_json: bool) -> None:
    """Write one statement per owner of the month's spend (lines by project, model, feature)."""
    from spendgate.finance.formats import render_statement
    from spendgate.finance.statements import build_statements

    statements = build_statements(store, month, by)
    out.mkdir(parents=True, exist_ok=True)
    ledger_id = store.ledger_id()
    written = []
    for statement in statements:
        path = out / f"{statement.file_stem()}.{fmt}"
        path.write_bytes(render_statement(statement, fmt, ledger_id))
        written.append({"owner": statement.owner, "file": str(path), "total_cost_usd": format_usd(statement.total)})
    if as_json:
        print_json(written)
    else:
        click.echo(f"wrote {len(written)} statements to {out}", err=True)
