"""`spendgate budgets | limits | policies`: the enforcement rules, managed from the CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import click

from spendgate.budgets.enforcer import counter_key
from spendgate.budgets.model import (
    Budget,
    Policy,
    RateLimit,
    Scope,
    check_timezone,
    default_budget_name,
    parse_alerts,
    parse_limit,
)
from spendgate.budgets.status import budget_status
from spendgate.budgets.windows import window_for
from spendgate.cli.support import db_options, json_option, print_json, print_table
from spendgate.ledger.store import Store
from spendgate.settings import Settings


@click.group()
def budgets() -> None:
    """Spend limits per scope and calendar period; blocking (402) or soft (alerts only)."""


@budgets.command("create")
@click.option(
    "--scope",
    required=True,
    help="org, team:NAME, project:NAME, key:NAME, customer:ID, feature:NAME, tag:K=V",
)
@click.option("--limit", "limit", required=True, help="USD per period, e.g. 250 or 99.50")
@click.option("--period", type=click.Choice(["day", "week", "month", "total"]), default="month", show_default=True)
@click.option("--timezone", default="UTC", show_default=True, help="IANA timezone of the calendar periods")
@click.option("--alert-at", default=None, help="Alert thresholds in percent (default 50,80,100; '' for none)")
@click.option("--soft", is_flag=True, help="Only alert; never refuse")
@click.option(
    "--on-exhausted",
    type=click.Choice(["block", "approve"]),
    default="block",
    show_default=True,
    help="approve: once exhausted, refuse with a 402 carrying an approval request (spendgate approvals)",
)
@click.option("--name", default=None, help="Default: SCOPE-PERIOD")
@json_option
@db_options(creates=True)
def budgets_create(
    store: Store,
    scope: str,
    limit: str,
    period: str,
    timezone: str,
    alert_at: str | None,
    soft: bool,
    on_exhausted: str,
    name: str | None,
    as_json: bool,
) -> None:
    parsed = Scope.parse(scope)
    budget = Budget(
        name=name or default_budget_name(parsed, period),
        scope=parsed,
        limit_usd=parse_limit(limit),
        period=period,
        timezone=check_timezone(timezone),
        alert_at=parse_alerts(alert_at),
        soft=soft,
        on_exhausted=on_exhausted,
    )
    store.create_budget(budget)
    if as_json:
        now = datetime.now(UTC)
        print_json(budget_status(budget, window_for(period, timezone, now), Decimal(0), Decimal(0), now))
    else:
        kind = "soft" if soft else "blocking"
        click.echo(f"budget {budget.name} created: {kind}, ${limit} per {period} on {parsed}")


def _reserved(settings_redis: str | None, namespace: str, keys: list[str]) -> dict[str, Decimal]:
    """In-flight reservations live in the gateways' counters: readable here only when they
    are shared (Redis); a single in-process gateway's are not visible to the CLI."""
    if not settings_redis or not keys:
        return {}
    from spendgate.budgets.redis_counters import RedisCounters

    async def read() -> dict[str, Decimal]:
        counters = await RedisCounters.connect(settings_redis, namespace=namespace)
        try:
            states = await counters.states(keys)
            return {key: state.reserved for key, state in states.items()}
        finally:
            await counters.close()

    return asyncio.run(read())


def _statuses(store: Store, redis_url: str | None, settings: Settings, now: datetime) -> list[dict]:
    """Each budget's current window: spent from the ledger, reserved from Redis when shared,
    and the extra spend approved for the window (its effective limit)."""
    from spendgate.budgets.redis_counters import ledger_namespace

    items = store.list_budgets()
    windows = {b.name: window_for(b.period, b.timezone, now) for b in items}
    redis_url = redis_url or settings.redis_url
    namespace = ledger_namespace(settings.redis_namespace, store.ledger_id()) if redis_url and items else ""
    reserved = _reserved(redis_url, namespace, [counter_key(b, windows[b.name]) for b in items])
    extras = store.approved_extras() if items else {}
    return [
        budget_status(
            b,
            windows[b.name],
            store.spend(b.scope, windows[b.name].start, windows[b.name].end),
            reserved.get(counter_key(b, windows[b.name]), Decimal(0)),
            now,
            approved_extra=extras.get(f"{b.name}@{windows[b.name].key}", Decimal(0)),
        )
        for b in items
    ]


@budgets.command("list")
@json_option
@click.option("--redis-url", default=None, envvar="SPENDGATE_REDIS_URL", help="To show in-flight reservations")
@db_options(with_settings=True)
def budgets_list(store: Store, as_json: bool, redis_url: str | None, settings: Settings) -> None:
    """Each budget's current window: spent (from the ledger), reserved, remaining, projected."""
    rows = _statuses(store, redis_url, settings, datetime.now(UTC))
    if as_json:
        print_json(rows)
        return
    print_table(
        ["budget", "scope", "window", "limit", "extra", "spent", "reserved", "remaining", "projected", "kind"],
        [
            [
                r["name"],
                r["scope"],
                r["window"],
                r["limit_usd"],
                r["approved_extra_usd"],
                r["spent_usd"],
                r["reserved_usd"],
                r["remaining_usd"],
                r["projected_usd"],
                "soft" if r["soft"] else "blocking",
            ]
            for r in rows
        ],
    )


_FORECAST_FIELDS = ("projected_usd", "low_usd", "high_usd", "runs_out_on", "overrun")


@budgets.command("status")
@click.argument("name", required=False)
@json_option
@click.option("--redis-url", default=None, envvar="SPENDGATE_REDIS_URL", help="To show in-flight reservations")
@db_options(with_settings=True)
def budgets_status(store: Store, name: str | None, as_json: bool, redis_url: str | None, settings: Settings) -> None:
    """Each budget (or NAME): limit, approved extra, effective limit, spent, reserved, remaining,
    and the weekday-aware forecast of its window's end (80% interval, run-out day)."""
    from spendgate.budgets.forecasts import budget_forecast

    now = datetime.now(UTC)
    statuses = _statuses(store, redis_url, settings, now)
    if name is not None:
        statuses = [s for s in statuses if s["name"] == name]
        if not statuses:
            raise click.ClickException(f"unknown budget {name!r}; see `spendgate budgets list`")
    by_name = {b.name: b for b in store.list_budgets()}
    rows = []
    for status in statuses:
        budget = by_name.get(status["name"])
        extra = Decimal(status["approved_extra_usd"])
        forecast = budget_forecast(store, budget, now, approved_extra=extra) if budget is not None else None
        # The linear projection is `budgets list`'s; here the forecast takes its place.
        row = {k: v for k, v in status.items() if k != "projected_usd"}
        rows.append({**row, "forecast": {k: forecast[k] for k in _FORECAST_FIELDS} if forecast else None})
    if as_json:
        print_json(rows)
        return
    print_table(
        ["budget", "window", "limit", "extra", "effective", "spent", "reserved", "remaining", "forecast", "runs out"],
        [
            [
                r["name"],
                r["window"],
                r["limit_usd"],
                r["approved_extra_usd"],
                r["effective_limit_usd"],
                r["spent_usd"],
                r["reserved_usd"],
                r["remaining_usd"],
                _forecast_text(r["forecast"]),
                (r["forecast"] or {}).get("runs_out_on"),
            ]
            for r in rows
        ],
    )


def _forecast_text(forecast: dict | None) -> str | None:
    if forecast is None:
        return None
    return f"{forecast['projected_usd']} ({forecast['low_usd']}-{forecast['high_usd']})"


@budgets.command("delete")
@click.argument("name")
@json_option
@db_options
def budgets_delete(store: Store, name: str, as_json: bool) -> None:
    store.delete_budget(name)
    if as_json:
        print_json({"deleted": name})
    else:
        click.echo(f"budget {name} deleted")


@click.group()
def limits() -> None:
    """Requests and tokens per minute per scope (429 with retry-after)."""


@limits.command("create")
@click.option("--scope", required=True)
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute")
@click.option("--tpm", type=click.IntRange(min=1), default=None, help="Tokens (input + output) per minute")
@json_option
@db_options(creates=True)
def limits_create(store: Store, scope: str, rpm: int | None, tpm: int | None, as_json: bool) -> None:
    limit = store.create_limit(RateLimit(Scope.parse(scope), rpm, tpm))
    if as_json:
        print_json(_limit_json(limit))
    else:
        click.echo(f"limit on {limit.scope}: rpm {rpm or '—'}, tpm {tpm or '—'}")


def _limit_json(limit: RateLimit) -> dict[str, object]:
    return {"scope": str(limit.scope), "rpm": limit.rpm, "tpm": limit.tpm}


@limits.command("list")
@json_option
@db_options
def limits_list(store: Store, as_json: bool) -> None:
    items = store.list_limits()
    if as_json:
        print_json([_limit_json(i) for i in items])
    else:
        print_table(["scope", "rpm", "tpm"], [[str(i.scope), i.rpm, i.tpm] for i in items])


@limits.command("delete")
@click.argument("scope")
@json_option
@db_options
def limits_delete(store: Store, scope: str, as_json: bool) -> None:
    parsed = str(Scope.parse(scope))
    store.delete_limit(parsed)
    if as_json:
        print_json({"deleted": parsed})
    else:
        click.echo(f"limit on {scope} deleted")


@click.group()
def policies() -> None:
    """Dimensions every request from an environment's keys must carry (400 otherwise)."""


@policies.command("require")
@click.option("--environment", required=True)
@click.option("--dimensions", required=True, help="Comma-separated: project, team, feature, customer, trace, tag:NAME")
@json_option
@db_options(creates=True)
def policies_require(store: Store, environment: str, dimensions: str, as_json: bool) -> None:
    dims = tuple(d.strip() for d in dimensions.split(",") if d.strip())
    store.create_policy(Policy(environment, dims))
    if as_json:
        print_json({"environment": environment, "dimensions": list(dims)})
    else:
        click.echo(f"requests from {environment} keys must carry: {', '.join(dims)}")


@policies.command("list")
@json_option
@db_options
def policies_list(store: Store, as_json: bool) -> None:
    items = store.list_policies()
    if as_json:
        print_json([{"environment": p.environment, "dimensions": list(p.dimensions)} for p in items])
    else:
        print_table(["environment", "required dimensions"], [[p.environment, ", ".join(p.dimensions)] for p in items])


@policies.command("delete")
@click.argument("environment")
@json_option
@db_options
def policies_delete(store: Store, environment: str, as_json: bool) -> None:
    store.delete_policy(environment)
    if as_json:
        print_json({"deleted": environment})
    else:
        click.echo(f"policy for {environment} deleted")


__all__ = ["budgets", "limits", "policies"]
