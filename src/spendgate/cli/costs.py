"""`spendgate costs add|list`: other costs (tools, compute, search APIs…) as ``manual`` events, in
the same ledger, reports and budgets as token spend (ingest/costs.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from spendgate.cli.ingest import open_ledger
from spendgate.cli.support import LIMIT_MAX, print_json, print_table
from spendgate.ingest.offline import Recording
from spendgate.ledger.store import StoreError


@click.group()
def costs() -> None:
    """Costs that are not tokens: recorded by hand, reported and budgeted with the rest."""


@costs.command("add")
@click.option("--amount", required=True, help="USD, exact decimal (e.g. 1250.00).")
@click.option("--scope", default=None, help="org, team:NAME, project:NAME, feature:NAME, customer:ID or tag:KEY=VALUE.")
@click.option("--team", default=None, help="Same as --scope team:NAME.")
@click.option("--project", default=None, help="Same as --scope project:NAME.")
@click.option("--period", required=True, help="The month it belongs to (YYYY-MM), or a day (YYYY-MM-DD).")
@click.option("--category", required=True, help="tools, compute, search, … (report --by model groups by it).")
@click.option("--description", default=None, help="Free text (at most 256 characters).")
@click.option("--id", "cost_id", default=None, help="Your id for it: adding it again with the same id changes nothing.")
@click.option("--db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--json", "as_json", is_flag=True)
def costs_add(
    amount: str,
    scope: str | None,
    team: str | None,
    project: str | None,
    period: str,
    category: str,
    description: str | None,
    cost_id: str | None,
    db: str | None,
    config: str | None,
    as_json: bool,
) -> None:
    """Record a non-token cost: a manual event, flagged client-reported, dated at the start of
    its period, counted by reports and by the budgets of its scope."""
    from spendgate.ingest.costs import cost_record
    from spendgate.ingest.records import RecordError

    given = [s for s in (scope, f"team:{team}" if team else None, f"project:{project}" if project else None) if s]
    if len(given) != 1:
        raise click.UsageError("give the cost one owner: --scope SCOPE, --team NAME or --project NAME")
    try:
        record = cost_record(given[0], amount, period, category, description, cost_id)
    except RecordError as exc:
        raise click.UsageError(str(exc)) from None
    settings, store = open_ledger(db, config)
    try:
        recording = Recording(store, None, settings)
        outcome = asyncio.run(recording.batch([record], source="manual", endpoint="spendgate costs add", namespace=""))
        store.spend_written_elsewhere()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    if outcome.rejected:
        raise click.UsageError(outcome.rejected[0]["error"])
    [event] = outcome.events
    result = {
        "id": event.id,
        "cost_id": event.external_id,
        "amount_usd": str(event.cost_usd),
        "ts": event.ts.isoformat(),
        "project": event.project,
        "team": event.team,
        "category": category,
        "stored": bool(outcome.accepted),
    }
    if as_json:
        print_json(result)
    elif outcome.accepted:
        owner = given[0]
        click.echo(f"recorded ${result['amount_usd']} of {category} for {owner}, {period} (id {event.external_id})")
    else:
        click.echo(f"already recorded: a cost with id {event.external_id} is in the ledger; nothing changed")


@costs.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, LIMIT_MAX))
@click.option("--db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--json", "as_json", is_flag=True)
def costs_list(limit: int, db: str | None, config: str | None, as_json: bool) -> None:
    """Other costs recorded, newest first."""
    _, store = open_ledger(db, config)
    try:
        items = store.list_events(limit, where=(("source", ("manual",)),))
    finally:
        store.close()
    rows: list[dict[str, Any]] = [
        {
            "id": e["external_id"],
            "period_start": e["ts"],
            "amount_usd": e["cost_usd"],
            "category": e["model"],
            "project": e["project"],
            "team": e["team"],
            "feature": e["feature"],
            "customer": e["customer"],
            "description": (e["tags"] or {}).get("description"),
        }
        for e in items
    ]
    if as_json:
        print_json(rows)
        return
    columns = ["id", "period_start", "amount_usd", "category", "project", "team", "description"]
    print_table(columns, [[row[c] for c in columns] for row in rows])
