"""`spendgate prune`: retention for raw usage events (rollups are kept).

Reports by team, project, model… and budget spend keep answering for pruned periods from the
rollups; reports by trace or tag over a pruned period are refused with the horizon named.
Keep raw events longer than the longest budget period (35 days covers monthly budgets): a
tag-scoped budget, and the partial hours at the edges of a window in a half-hour time zone,
are summed from raw events, and that sum is refused rather than undercounted once pruned.
Events older than the horizon that arrive late (a spool replayed after a long outage) are
refused too, as their ids can no longer be checked against the pruned ones.

``spendgate serve`` with ``retention_days`` set prunes by itself every hour (ledger/retention.py);
this command is for a gateway-less clean-up or a one-off ``--before``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from spendgate.cli.support import json_option, open_existing_store, print_json, settings_from
from spendgate.ledger.retention import retention_cutoff
from spendgate.ledger.store import StoreError


@click.command("prune")
@click.option(
    "--before",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Delete raw events before this UTC day (default: today minus retention_days).",
)
@click.option("--db", "db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@json_option
def prune_command(before: datetime | None, db: str | None, config: str | None, as_json: bool) -> None:
    """Delete raw usage events older than the retention period; rollups stay."""
    settings = settings_from(db, config)
    if before is None:
        if settings.retention_days is None:
            raise click.UsageError("nothing to prune: pass --before YYYY-MM-DD or set retention_days")
        cutoff = retention_cutoff(datetime.now(UTC).date(), settings.retention_days)
    else:
        cutoff = before.replace(tzinfo=UTC)
    try:
        store = open_existing_store(settings.db)
    except StoreError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        deleted = store.prune(cutoff)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        print_json({"before": cutoff.isoformat(), "deleted": deleted})
    else:
        click.echo(f"deleted {deleted} raw events before {cutoff.date().isoformat()} (UTC); rollups kept")
