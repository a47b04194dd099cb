"""`spendgate approvals …`: extra spend for exhausted `--on-exhausted approve` budgets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from spendgate.cli.support import db_options, json_option, print_json, print_table
from spendgate.ledger.store.approvals import APPROVED, DENIED, PENDING

_COLUMNS = ["id", "budget", "window", "scope", "status", "extra_usd", "reason", "requested_at"]


@click.group()
def approvals() -> None:
    """Requests for extra spend from budgets created with --on-exhausted approve."""


@approvals.command("list")
@click.option("--status", type=click.Choice([PENDING, APPROVED, DENIED]), default=None)
@json_option
@db_options
def approvals_list(store: Any, status: str | None, as_json: bool) -> None:
    found = store.list_approvals(status)
    if as_json:
        print_json(found)
    else:
        print_table(_COLUMNS, [[a[c] for c in _COLUMNS] for a in found])


@approvals.command("approve")
@click.argument("approval_id")
@click.option("--extra", required=True, help="USD granted on top of the budget's limit, for this window only.")
@click.option("--reason", required=True, help="Why (recorded with the approval).")
@click.option("--by", "decided_by", default=None, help="Who decided (shown in the finance report).")
@json_option
@db_options
def approvals_approve(
    store: Any, approval_id: str, extra: str, reason: str, decided_by: str | None, as_json: bool
) -> None:
    try:
        amount = Decimal(extra)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{extra!r} is not a dollar amount", param_hint="--extra") from exc
    now = datetime.now(UTC)
    decided = store.decide_approval(approval_id, APPROVED, now, extra=amount, reason=reason, decided_by=decided_by)
    if as_json:
        print_json(decided)
    else:
        click.echo(
            f"approval {decided['id']}: ${decided['extra_usd']} more for {decided['budget']} ({decided['window']})"
        )


@approvals.command("deny")
@click.argument("approval_id")
@click.option("--reason", default=None)
@click.option("--by", "decided_by", default=None, help="Who decided.")
@json_option
@db_options
def approvals_deny(store: Any, approval_id: str, reason: str | None, decided_by: str | None, as_json: bool) -> None:
    decided = store.decide_approval(approval_id, DENIED, datetime.now(UTC), reason=reason, decided_by=decided_by)
    if as_json:
        print_json(decided)
    else:
        click.echo(f"approval {decided['id']} denied")
