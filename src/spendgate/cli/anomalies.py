"""`spendgate anomalies …` and `spendgate suspensions …`: spend anomalies, the rules that
watch a scope (and may suspend it), and the scopes suspended."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import click

from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.record import ACKNOWLEDGED, RESOLVED
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, Scope
from spendgate.cli.support import db_options, json_option, print_json, print_table
from spendgate.watch.history import scan_history

_COLUMNS = ["id", "scope", "start", "end", "cost_usd", "expected_usd", "score", "status"]


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from exc


def _print(anomalies: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(anomalies)
    else:
        print_table(_COLUMNS, [[a.get(c) for c in _COLUMNS] for a in anomalies])


@click.group()
def anomalies() -> None:
    """Spend anomalies: a scope spending far above its weekday-and-hour baseline."""


@anomalies.command("scan")
@click.option("--since", required=True, help="First day to scan (YYYY-MM-DD).")
@click.option("--until", default=None, help="Last day to scan (YYYY-MM-DD; default today).")
@json_option
@db_options
def anomalies_scan(store: Any, since: str, until: str | None, as_json: bool) -> None:
    """Run the detector over history (hourly rollups) and record what it finds."""
    now = datetime.now(UTC)
    first = _day(since, "--since")
    last = _day(until, "--until") or now.date()
    assert first is not None
    if last < first:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    _print(scan_history(store, first, last, now, AnomalyParams()), as_json)


@anomalies.command("list")
@click.option("--since", default=None, help="Anomalies still going on or ending on or after this day.")
@json_option
@db_options
def anomalies_list(store: Any, since: str | None, as_json: bool) -> None:
    day = _day(since, "--since")
    _print(store.list_anomalies(datetime.combine(day, time(), UTC) if day else None), as_json)


def _status_command(name: str, status: str) -> None:
    @anomalies.command(name)
    @click.argument("anomaly_id")
    @json_option
    @db_options
    def command(store: Any, anomaly_id: str, as_json: bool) -> None:
        anomaly = store.set_anomaly_status(anomaly_id, status)
        if as_json:
            print_json(anomaly)
        else:
            click.echo(f"anomaly {anomaly['id']} ({anomaly['scope']}) is {anomaly['status']}")

    command.__doc__ = f"Mark an anomaly {status}."


_status_command("ack", ACKNOWLEDGED)
_status_command("resolve", RESOLVED)


@anomalies.group("rules")
def rules() -> None:
    """Scopes watched beyond org, teams, projects and keys, and which are suspended on an anomaly."""


@rules.command("create")
@click.option(
    "--scope",
    "scope_text",
    required=True,
    help="org, team:NAME, key:NAME, feature:NAME, customer:ID, tag:K=V …, or trace:* (every runaway trace)",
)
@click.option("--suspend", is_flag=True, help="Suspend the scope (403 scope_suspended) when it has an anomaly.")
@json_option
@db_options(creates=True)
def rules_create(store: Any, scope_text: str, suspend: bool, as_json: bool) -> None:
    rule = store.create_anomaly_rule(Scope.parse(scope_text, ANOMALY_SCOPE_KINDS), suspend)
    if as_json:
        print_json(rule)
    else:
        then = "suspended" if suspend else "reported"
        click.echo(f"anomalies on {rule['scope']} will be {then}")


@rules.command("list")
@json_option
@db_options
def rules_list(store: Any, as_json: bool) -> None:
    found = store.list_anomaly_rules()
    if as_json:
        print_json(found)
    else:
        print_table(["scope", "suspend"], [[r["scope"], r["suspend"]] for r in found])


@rules.command("delete")
@click.option("--scope", "scope_text", required=True)
@json_option
@db_options
def rules_delete(store: Any, scope_text: str, as_json: bool) -> None:
    scope = Scope.parse(scope_text, ANOMALY_SCOPE_KINDS)
    store.delete_anomaly_rule(scope)
    if as_json:
        print_json({"scope": str(scope), "deleted": True})
    else:
        click.echo(f"anomaly rule for {scope} deleted")


@click.group()
def suspensions() -> None:
    """Scopes whose requests are refused (403 scope_suspended) until resumed."""


@suspensions.command("list")
@json_option
@db_options
def suspensions_list(store: Any, as_json: bool) -> None:
    found = store.list_suspensions()
    if as_json:
        print_json(found)
    else:
        rows = [[s["scope"], s["anomaly_id"], s["since"], s["until"] or "when resumed"] for s in found]
        print_table(["scope", "anomaly_id", "since", "until"], rows)


@suspensions.command("resume")
@click.argument("scope_text", metavar="SCOPE")
@json_option
@db_options
def suspensions_resume(store: Any, scope_text: str, as_json: bool) -> None:
    resumed = store.resume_scope(Scope.parse(scope_text, ANOMALY_SCOPE_KINDS))
    if as_json:
        print_json(resumed)
    else:
        click.echo(f"{resumed['scope']} resumed: its requests pass again")
