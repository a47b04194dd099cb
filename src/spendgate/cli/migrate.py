"""``spendgate migrate``: bring the database schema up to date.

Schemas are versioned (``ledger/store/migrations/``); on PostgreSQL the command applies what
is pending, each migration in its own transaction under an advisory lock, so running it from
several places at once is safe. SQLite upgrades its schema whenever the database is opened,
so there the command only opens it.
"""

from __future__ import annotations

import click
import orjson

from spendgate.ledger.store import StoreError, is_postgres_url, open_store
from spendgate.settings import SettingsError, load_settings


@click.command("migrate")
@click.option("--db", "db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--check", is_flag=True, help="Apply nothing: list pending migrations, exit 1 if there are any.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def migrate_command(db: str | None, config: str | None, check: bool, as_json: bool) -> None:
    """Apply pending database schema migrations (PostgreSQL; SQLite needs none)."""
    try:
        url = load_settings({"db": db}, config_path=config).db
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        if is_postgres_url(url):
            outcome = _migrate_postgres(url, check)
        else:
            open_store(url).close()  # SQLite: creating or upgrading happens on open
            outcome = {"backend": "sqlite", "applied": [], "pending": [], "version": None}
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc

    if as_json:
        click.echo(orjson.dumps(outcome, option=orjson.OPT_INDENT_2).decode())
    elif outcome["backend"] == "sqlite":
        click.echo("SQLite: the schema is created and upgraded when the database is opened; it is up to date.")
    elif check:
        if outcome["pending"]:
            click.echo(f"pending migrations: {', '.join(outcome['pending'])}")
        else:
            click.echo(f"schema up to date at version {outcome['version']}")
    elif outcome["applied"]:
        click.echo(f"applied {', '.join(outcome['applied'])}; schema at version {outcome['version']}")
    else:
        click.echo(f"schema up to date at version {outcome['version']}; nothing to apply")
    if check and outcome["pending"]:
        raise SystemExit(1)


def _migrate_postgres(url: str, check: bool) -> dict:
    from spendgate.ledger.store import migrate as migrations
    from spendgate.ledger.store.dialects.postgresql import PostgresDialect

    dialect = PostgresDialect(url)
    labels = {m.version: m.label for m in migrations.available(dialect.name)}
    with dialect.setup_session() as session:
        pending = [m.label for m in migrations.pending(session, dialect)]
        applied = [] if check else [labels[v] for v in migrations.migrate(session, dialect)]
        versions = sorted(migrations.applied(session, dialect))
    return {
        "backend": "postgresql",
        "applied": applied,
        "pending": pending if check else [],
        "version": versions[-1] if versions else None,
    }


if __name__ == "__main__":  # python -m spendgate.cli.migrate (the tests run several at once)
    migrate_command()
