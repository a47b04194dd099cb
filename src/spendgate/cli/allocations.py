"""`spendgate allocations create|list|delete`: shared-cost allocation rules (finance/)."""

from __future__ import annotations

import click

from spendgate.cli.support import db_options, json_option, print_json, print_table
from spendgate.finance.allocation import METHODS, OWNER_DIMENSIONS, AllocationError, Pool, Rule, parse_targets
from spendgate.ledger.store import Store
from spendgate.money import format_usd


def rule_as_json(rule: Rule) -> dict[str, object]:
    return {
        "name": rule.name,
        "pool": str(rule.pool),
        "method": rule.method,
        "by": rule.by,
        "to": {owner: format_usd(pct) for owner, pct in rule.targets.items()},
    }


@click.group()
def allocations() -> None:
    """Rules moving shared spend (a pool) onto owners; `report --allocated` applies them."""


@allocations.command("create")
@click.option("--name", required=True)
@click.option("--from", "pool", required=True, help="unallocated, team:T, project:P, tag:K=V or category:C.")
@click.option("--method", required=True, type=click.Choice(METHODS))
@click.option("--to", "targets", default=None, help="fixed: OWNER=PCT,… (sum 100); else the owners it may reach.")
@click.option("--by", "by", default="team", show_default=True, type=click.Choice(OWNER_DIMENSIONS))
@json_option
@db_options
def allocations_create(
    store: Store, name: str, pool: str, method: str, targets: str | None, by: str, as_json: bool
) -> None:
    """Create a rule; rules apply in creation order."""
    try:
        rule = Rule(name=name, pool=Pool.parse(pool), method=method, by=by, targets=parse_targets(targets, method))
    except AllocationError as exc:
        raise click.UsageError(str(exc)) from None
    store.create_allocation_rule(rule)
    if as_json:
        print_json(rule_as_json(rule))
    else:
        click.echo(f"allocation rule {name} created: {rule.pool} -> {by}s, {method}")


@allocations.command("list")
@json_option
@db_options
def allocations_list(store: Store, as_json: bool) -> None:
    rules = store.list_allocation_rules()
    if as_json:
        print_json([rule_as_json(r) for r in rules])
        return
    print_table(
        ["name", "pool", "method", "by", "to"],
        [[r.name, str(r.pool), r.method, r.by, ", ".join(_target(o, p) for o, p in r.targets.items())] for r in rules],
    )


def _target(owner: str, pct: object) -> str:
    return f"{owner}={pct}%" if pct else owner


@allocations.command("delete")
@click.argument("name")
@json_option
@db_options
def allocations_delete(store: Store, name: str, as_json: bool) -> None:
    store.delete_allocation_rule(name)
    if as_json:
        print_json({"deleted": name})
    else:
        click.echo(f"allocation rule {name} deleted")
