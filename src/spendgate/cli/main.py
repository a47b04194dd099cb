"""The `spendgate` command: thin commands over the same services the admin API uses."""

from __future__ import annotations

import sys
from datetime import date

import click

from spendgate import management
from spendgate.cli.allocations import allocations
from spendgate.cli.anomalies import anomalies, suspensions
from spendgate.cli.approvals import approvals
from spendgate.cli.budgets import budgets, limits, policies
from spendgate.cli.costs import costs
from spendgate.cli.customers import customers
from spendgate.cli.dead_letters import dead_letters
from spendgate.cli.export import export_group
from spendgate.cli.finance import finance
from spendgate.cli.finance_deliver import finance_deliver
from spendgate.cli.forecast import forecast_command
from spendgate.cli.ingest import ingest_command
from spendgate.cli.ledger import prune_command
from spendgate.cli.migrate import migrate_command
from spendgate.cli.reconcile import import_group, reconcile_command
from spendgate.cli.statements import statements_command
from spendgate.cli.support import LIMIT_MAX, db_options, json_option, print_json, print_table, settings_from
from spendgate.cli.users import users
from spendgate.cli.webhooks import alerts, webhooks
from spendgate.ledger.store import Store, StoreError
from spendgate.redact import redact_urls
from spendgate.reports.render import events_csv, events_table, report_csv, report_json, report_table, stdout_console
from spendgate.reports.spec import ReportQuery, parse_dimensions, parse_where


@click.group()
@click.version_option(package_name="spendgate")
def main() -> None:
    """spendgate: an LLM cost-attribution gateway."""


# --- serve & demo -------------------------------------------------------------------------
@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to listen on (default 4100).")
@click.option("--db", default=None, help="Database URL.")
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Processes (needs Redis).")
def serve(host: str | None, port: int | None, db: str | None, config: str | None, log_level: str, workers: int) -> None:
    """Run the gateway (and its admin API) on one port."""
    from spendgate.pricing import PriceFileError
    from spendgate.server import run_gateway
    from spendgate.settings import SettingsError

    flags = {"db": db, "host": host, "port": port}
    settings = settings_from(db, config, host=host, port=port)
    try:
        run_gateway(settings, log_level=log_level, workers=workers, flags=flags, config_path=config)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    except PriceFileError as exc:
        # One line naming the file, the entry and the problem; exit status 1, no traceback.
        raise click.ClickException(f"invalid price overrides: {exc}") from None
    except StoreError as exc:  # e.g. an unsupported database URL, which may hold a password
        raise click.ClickException(redact_urls(str(exc))) from exc


@main.command()
@click.option("--db", default=None, help="Database URL (default: a fresh file in a temporary folder).")
@click.option("--requests", "total_requests", default=3000, show_default=True, help="Requests to simulate.")
@click.option("--seed", default=7, show_default=True, help="Random seed, for a repeatable month.")
@click.option(
    "--serve/--no-serve",
    default=None,
    help="Then serve the dashboard on the demo's data until Ctrl-C (default: only when run in a terminal).",
)
@click.option("--port", default=4100, show_default=True, type=int, help="Port of the served dashboard.")
def demo(db: str | None, total_requests: int, seed: int, serve: bool | None, port: int) -> None:
    """Simulate a month of traffic from several teams through the real gateway (offline), then
    serve the dashboard on it (in a terminal; --no-serve exits after printing)."""
    import sys

    from spendgate.demo import run_demo

    if serve is None:  # scripts, CI and pipes get their prompt back
        serve = sys.stdin.isatty() and sys.stdout.isatty()
    run_demo(db_url=db, total_requests=total_requests, seed=seed, serve=serve, port=port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=4200, show_default=True, type=int)
@click.option("--latency-ms", default=0.0, show_default=True, help="Delay before every answer.")
def simulator(host: str, port: int, latency_ms: float) -> None:
    """Run the built-in simulated provider (OpenAI + Anthropic shapes), for trying the gateway
    without keys and for benchmarks. Point SPENDGATE_OPENAI_BASE_URL at http://HOST:PORT/v1 and
    SPENDGATE_ANTHROPIC_BASE_URL at http://HOST:PORT."""
    import uvicorn

    from spendgate.server import uvicorn_config
    from spendgate.simulator import create_simulator_app

    app = create_simulator_app(default_latency_ms=latency_ms)
    click.echo(f"simulated provider on http://{host}:{port} (OpenAI base URL: http://{host}:{port}/v1)")
    uvicorn.Server(uvicorn_config(app, host, port, lifespan="off")).run()


# --- teams, projects, keys ---------------------------------------------------------------
@main.group()
def teams() -> None:
    """Teams own projects; a cost center maps them to finance."""


@teams.command("create")
@click.argument("name")
@click.option("--cost-center", default=None)
@json_option
@db_options(creates=True)
def teams_create(store: Store, name: str, cost_center: str | None, as_json: bool) -> None:
    team = management.create_team(store, name, cost_center)
    if as_json:
        print_json(management.team_as_json(team))
    else:
        click.echo(f"team {team.name} created")


@teams.command("list")
@json_option
@db_options
def teams_list(store: Store, as_json: bool) -> None:
    items = store.list_teams()
    if as_json:
        print_json([management.team_as_json(t) for t in items])
    else:
        print_table(["team", "cost center", "reference"], [[t.name, t.cost_center, t.reference] for t in items])


@teams.command("update")
@click.argument("name")
@click.option("--reference", required=True, help="Purchase-order or billing reference on statements ('' clears).")
@json_option
@db_options
def teams_update(store: Store, name: str, reference: str, as_json: bool) -> None:
    from spendgate.references import check_text

    team = store.set_team_reference(name, check_text("--reference", reference))
    if as_json:
        print_json(management.team_as_json(team))
    else:
        click.echo(f"team {team.name}: reference {team.reference or '(none)'}")


@main.group()
def projects() -> None:
    """Projects (agents, products, features) belong to a team."""


@projects.command("create")
@click.argument("name")
@click.option("--team", required=True)
@json_option
@db_options(creates=True)
def projects_create(store: Store, name: str, team: str, as_json: bool) -> None:
    project = management.create_project(store, name, team)
    if as_json:
        print_json(management.project_as_json(project))
    else:
        click.echo(f"project {project.name} created in team {project.team}")


@projects.command("list")
@json_option
@db_options
def projects_list(store: Store, as_json: bool) -> None:
    items = store.list_projects()
    if as_json:
        print_json([management.project_as_json(p) for p in items])
    else:
        print_table(["project", "team"], [[p.name, p.team] for p in items])


@main.group()
def keys() -> None:
    """Gateway keys (sg-…): shown once, stored hashed, revocable."""


@keys.command("create")
@click.option("--name", required=True)
@click.option("--project", default=None, help="Default project of the key's requests; the key joins its team.")
@click.option("--lock", is_flag=True, help="Always attribute to --project, whatever the headers say.")
@click.option("--environment", default=None, help="production (default), staging, development, …")
@click.option("--team", default=None, help="The key's team: it may name that team's projects (default: --project's).")
@click.option(
    "--allow-project", "allow_projects", multiple=True, metavar="P", help="Another project it may name (repeatable)."
)
@click.option("--org-wide", is_flag=True, help="It may name any project and any team.")
@json_option
@db_options(creates=True)
def keys_create(
    store: Store,
    name: str,
    project: str | None,
    lock: bool,
    environment: str | None,
    team: str | None,
    allow_projects: tuple[str, ...],
    org_wide: bool,
    as_json: bool,
) -> None:
    new_key = management.create_key(
        store,
        name,
        project=project,
        lock=lock,
        environment=environment,
        team=team,
        allow_projects=allow_projects,
        org_wide=org_wide,
    )
    if as_json:
        print_json(new_key.as_json())
        return
    scope = management.key_scope(new_key.key)
    click.echo(f"key {name} created (environment {new_key.key.environment}, project {project or '—'}, scope {scope})")
    click.echo(new_key.secret)
    click.echo("This is the only time the key is shown: store it now.", err=True)
    if not (project or team or allow_projects or org_wide):
        click.echo(
            "It may name no project or team: its spend is unallocated. Widen it with"
            f" `spendgate keys update {name} --team T` (or --allow-project P, --org-wide).",
            err=True,
        )


@keys.command("list")
@json_option
@db_options
def keys_list(store: Store, as_json: bool) -> None:
    items = store.list_keys()
    if as_json:
        print_json([management.key_as_json(k) for k in items])
    else:
        print_table(
            ["key", "prefix", "project", "locked", "scope", "environment", "revoked"],
            [
                [k.name, k.key_prefix, k.project, k.locked, management.key_scope(k), k.environment, k.revoked]
                for k in items
            ],
        )


@keys.command("update")
@click.argument("name")
@click.option("--team", default=None, help="The key's team: it may name that team's projects, and the team.")
@click.option("--no-team", "clear_team", is_flag=True, help="The key belongs to no team.")
@click.option(
    "--allow-project", "allow_projects", multiple=True, metavar="P", help="Another project it may name (repeatable)."
)
@click.option(
    "--disallow-project", "disallow_projects", multiple=True, metavar="P", help="Take an allowed project back."
)
@click.option("--org-wide/--no-org-wide", "org_wide", default=None, help="It may name any project and team, or not.")
@json_option
@db_options
def keys_update(
    store: Store,
    name: str,
    team: str | None,
    clear_team: bool,
    allow_projects: tuple[str, ...],
    disallow_projects: tuple[str, ...],
    org_wide: bool | None,
    as_json: bool,
) -> None:
    """Change what a key may attribute spend to (running gateways follow within a second)."""
    key = management.update_key(
        store,
        name,
        team=team,
        clear_team=clear_team,
        allow_projects=allow_projects,
        disallow_projects=disallow_projects,
        org_wide=org_wide,
    )
    if as_json:
        print_json(management.key_as_json(key))
    else:
        click.echo(f"key {name}: scope {management.key_scope(key)}")


@keys.command("revoke")
@click.argument("name")
@json_option
@db_options
def keys_revoke(store: Store, name: str, as_json: bool) -> None:
    key = store.revoke_key(name)
    if as_json:
        print_json(management.key_as_json(key))
    else:
        click.echo(f"key {name} revoked")


# --- reports --------------------------------------------------------------------------------
def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint=option) from exc


@main.command()
@click.option("--by", "by", default="project", show_default=True, help="Dimensions, comma-separated.")
@click.option("--since", default=None, help="First day, YYYY-MM-DD (UTC).")
@click.option("--until", default=None, help="Last day, inclusive, YYYY-MM-DD (UTC).")
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="DIM=VALUE",
    help="Only spend with this value (repeatable: AND across dimensions, OR within one).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--no-totals", is_flag=True, help="CSV: no totals line at the end (e.g. for an import).")
@click.option("--allocated", is_flag=True, help="Apply the allocation rules (--by team, project or cost_center).")
@db_options
def report(
    store: Store,
    by: str,
    since: str | None,
    until: str | None,
    where: tuple[str, ...],
    fmt: str,
    as_json: bool,
    no_totals: bool,
    allocated: bool,
) -> None:
    """Spend grouped by any combination of dimensions, exact to the last digit."""
    fmt = "json" if as_json else fmt
    query = ReportQuery(
        by=parse_dimensions(by), since=_date(since, "--since"), until=_date(until, "--until"), where=parse_where(where)
    )
    if allocated:
        from spendgate.finance.render import print_allocated

        print_allocated(store, query, fmt, totals=not no_totals)
        return
    result = store.report(query)
    if fmt == "json":
        click.echo(report_json(result))
    elif fmt == "csv":
        sys.stdout.write(report_csv(result, totals=not no_totals))
    else:
        report_table(result, stdout_console())


@main.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, LIMIT_MAX), help="How many.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@db_options
def events(store: Store, limit: int, fmt: str, as_json: bool) -> None:
    """Ledger events, newest first."""
    fmt = "json" if as_json else fmt
    items = store.list_events(limit)
    if fmt == "json":
        print_json(items)
    elif fmt == "csv":
        sys.stdout.write(events_csv(items))
    else:
        events_table(items, stdout_console())


# Feature areas keep their commands in their own modules.
for command in (
    budgets,
    limits,
    policies,
    webhooks,
    alerts,
    migrate_command,
    prune_command,
    dead_letters,
    users,
    ingest_command,
    costs,
    reconcile_command,
    import_group,
    anomalies,
    suspensions,
    forecast_command,
    approvals,
    allocations,
    export_group,
    finance,
    statements_command,
    customers,
):
    main.add_command(command)
finance.add_command(finance_deliver)  # `spendgate finance deliver`: its own module (cli/finance_deliver.py)
