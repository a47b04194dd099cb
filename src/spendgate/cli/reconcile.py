"""`spendgate reconcile` and `spendgate import provider`: the ledger beside a provider's own
usage and cost reports (read with the organization's admin key), and importing what the gateway
never saw. The comparison is spendgate.reconcile's; this module only reads, prints and stores."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date
from typing import Any

import click

from spendgate.cli.support import print_json, print_table

PROVIDER_CHOICE = click.Choice(["openai", "anthropic"])
TABLE_COLUMNS = (
    "day",
    "model",
    "api_key_id",
    "ledger_cost_usd",
    "provider_cost_usd",
    "diff_usd",
    "ledger_input_tokens",
    "provider_input_tokens",
    "ledger_output_tokens",
    "provider_output_tokens",
    "verdict",
)


def range_options(command: Any) -> Any:
    command = click.option("--config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")(
        command
    )
    command = click.option("--db", default=None, help="Database URL (default: SPENDGATE_DB).")(command)
    command = click.option(
        "--until", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (inclusive)."
    )(command)
    command = click.option("--since", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First UTC day.")(command)
    return click.option("--provider", required=True, type=PROVIDER_CHOICE)(command)


def _fetch(settings: Any, provider: str, since: date, until: date) -> Any:
    from spendgate.providers.admin import AdminApiError, AdminKeyError, AdminResponseError
    from spendgate.reconcile.service import fetch_report

    if until < since:
        raise click.UsageError("--until is before --since")
    try:
        return asyncio.run(fetch_report(settings, provider, since, until, os.environ))
    except AdminKeyError as exc:
        raise click.UsageError(str(exc)) from None
    except (AdminApiError, AdminResponseError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command("reconcile")
@range_options
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
def reconcile_command(
    provider: str, since: Any, until: Any, db: str | None, config: str | None, fmt: str, as_json: bool
) -> None:
    """The ledger beside PROVIDER's own usage and cost reports, per day, model and provider key,
    with a verdict per row, the drift over the range and the price override a consistent
    difference suggests. Needs OPENAI_ADMIN_KEY or ANTHROPIC_ADMIN_KEY."""
    from spendgate.cli.ingest import open_ledger
    from spendgate.ledger.store import StoreError
    from spendgate.reconcile import ROW_FIELDS, propose_overrides
    from spendgate.reconcile.service import reconcile_with_ledger
    from spendgate.redact import redact_urls
    from spendgate.reports.csv_export import csv_text
    from spendgate.reports.spec import ReportError

    settings, store = open_ledger(db, config)
    try:
        report = _fetch(settings, provider, since.date(), until.date())
        result = reconcile_with_ledger(store, settings, report)
    except (StoreError, ReportError) as exc:  # e.g. a range whose raw events were pruned
        raise click.ClickException(redact_urls(str(exc))) from exc
    finally:
        store.close()
    proposals, _ = propose_overrides(result)
    if fmt == "json" or as_json:
        print_json({**result.as_json(), "proposed_overrides": [p.as_json() for p in proposals]})
        return
    rows = [row.as_json() for row in result.rows]
    if fmt == "csv":
        sys.stdout.write(csv_text(ROW_FIELDS, rows))
        return
    print_table(list(TABLE_COLUMNS), [[row[c] for c in TABLE_COLUMNS] for row in rows])
    drift = result.drift_percent
    click.echo(
        f"ledger ${result.total_ledger_usd:,.2f}, {provider} ${result.total_provider_usd:,.2f},"
        f" drift {'n/a' if drift is None else f'{drift}%'}, unseen by the gateway ${result.unseen_usd:,.2f}"
    )
    counts = ", ".join(f"{count} {verdict}" for verdict, count in result.verdict_counts().items() if count)
    click.echo(f"rows: {counts or 'none'}")
    if result.refused:
        click.echo(f"{len(result.refused)} provider record(s) refused (see --format json)", err=True)
    for proposal in proposals:
        click.echo("\nA consistent difference; this price override would explain it:\n")
        click.echo(proposal.toml())


@click.group("import")
def import_group() -> None:
    """Import spend recorded elsewhere into the ledger."""


@import_group.command("provider")
@range_options
@click.option("--dry-run", is_flag=True, help="Show what would be imported; store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def import_provider_command(
    provider: str, since: Any, until: Any, db: str | None, config: str | None, dry_run: bool, as_json: bool
) -> None:
    """Usage PROVIDER reported and the ledger lacks becomes events (source provider_import),
    attributed by the [[reconcile.map]] entries; what the ledger holds for the same day, key
    and model is subtracted, so proxied traffic is never counted twice and a re-run adds nothing."""
    from spendgate.cli.ingest import open_ledger
    from spendgate.ledger.store import StoreError
    from spendgate.reconcile import rows_to_import
    from spendgate.reconcile.service import import_provider, reconcile_with_ledger
    from spendgate.redact import redact_urls
    from spendgate.reports.spec import ReportError

    settings, store = open_ledger(db, config)
    try:
        report = _fetch(settings, provider, since.date(), until.date())
        if dry_run:
            rows = rows_to_import(reconcile_with_ledger(store, settings, report))
            outcome = {"rows": [row.as_json() for row in rows], "accepted": 0, "duplicates": 0, "rejected": []}
        else:
            done = asyncio.run(import_provider(store, settings, report))
            outcome = {
                "rows": [row.as_json() for row in done.rows],
                "accepted": done.accepted,
                "duplicates": done.duplicates,
                "rejected": done.rejected,
            }
    except (StoreError, ReportError) as exc:
        raise click.ClickException(redact_urls(str(exc))) from exc
    finally:
        store.close()
    if as_json:
        print_json(outcome)
        return
    verb = "would be imported" if dry_run else "to import"
    click.echo(
        f"{len(outcome['rows'])} row(s) {verb}: {outcome['accepted']} stored,"
        f" {outcome['duplicates']} already in the ledger, {len(outcome['rejected'])} rejected"
    )
    for item in outcome["rejected"][:20]:
        row = item["row"]
        click.echo(f"  {row['day']} {row['model']} {row['api_key_id']}: {item['error']}", err=True)
