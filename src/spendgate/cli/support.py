"""What every `spendgate` command shares: settings from flags, a store from --db, output.

Only `serve`, `migrate`, `demo` and the commands that create something (teams, projects,
keys, budgets, limits, policies, webhooks, users) may create a ledger. Every other command opens
the one that exists and refuses, naming the URL, when there is none: a mistyped --db or a
report run in the wrong directory must not make an empty database and report $0.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson
from rich.table import Table

from spendgate.access.model import AccessError
from spendgate.budgets.model import BudgetError
from spendgate.ledger.store import Store, StoreError, open_store
from spendgate.redact import redact_url, redact_urls
from spendgate.reports.render import plain, stdout_console
from spendgate.reports.spec import ReportError
from spendgate.settings import Settings, SettingsError, load_settings

json_option = click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
# A --limit the databases can take (a 64-bit integer); anything larger is a usage error, not a crash.
LIMIT_MAX = 2**63 - 1


def settings_from(db: str | None, config: str | None, **flags: Any) -> Settings:
    try:
        return load_settings({"db": db, **flags}, config_path=config)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


# --- opening the ledger -----------------------------------------------------------------------
class NoLedgerError(click.ClickException):
    """The database URL names no spendgate ledger (exit status 1)."""


def _sqlite_file(url: str) -> str:
    # As SQLiteStore.from_url reads it: sqlite:///relative.db, sqlite:////absolute.db.
    path = url.split(":", 1)[1]
    return path[3:] if path.startswith("///") else path.lstrip("/")


def _sqlite_ledger_missing(url: str) -> str | None:
    """Why the SQLite URL names no ledger, or None when it does (read-only: creates nothing)."""
    path = _sqlite_file(url)
    if not path or path == ":memory:":
        return "an in-memory database holds no ledger"
    if not Path(path).is_file():
        return f"there is no file {Path(path).resolve()}"
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            # The events table is what every spendgate ledger has, whatever its schema version.
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_events'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        row = None
    return None if row else f"{Path(path).resolve()} is not a spendgate database"


def _postgres_ledger_missing(url: str) -> str | None:
    from spendgate.ledger.store.dialects.postgresql import connect

    with connect(url) as conn:  # a StoreError (server down, bad URL) says so itself
        row = conn.execute("SELECT to_regclass('usage_events') IS NOT NULL").fetchone()
        if row and row[0]:
            return None
    return "its schema holds no spendgate tables (never migrated)"


def open_existing_store(url: str) -> Store:
    """The ledger at ``url``, which must exist already: commands that only read (or change
    what exists) never create one. Raises NoLedgerError naming the URL otherwise."""
    if url.startswith("sqlite:"):
        missing = _sqlite_ledger_missing(url)
    elif url.startswith(("postgresql:", "postgres:")):
        missing = _postgres_ledger_missing(url)
    else:
        missing = None  # open_store names what is unsupported
    if missing is not None:
        raise NoLedgerError(
            f"no spendgate ledger at {redact_url(url)}: {missing}. Check --db, SPENDGATE_DB or the"
            " directory you run in; `spendgate migrate` or `spendgate serve` creates a ledger there."
        )
    return open_store(url)


def db_options(func: Callable[..., Any] | None = None, *, creates: bool = False, with_settings: bool = False) -> Any:
    """--db and --config on a command, resolved into a Store it receives first.

    ``@db_options`` needs an existing ledger; ``@db_options(creates=True)`` is for commands
    that create something, which may create the ledger too. ``with_settings``: the command
    also receives the resolved ``settings``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @click.option(
            "--db", "db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db)."
        )
        @click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
        @functools.wraps(command)
        def wrapper(db: str | None, config: str | None, **kwargs: Any) -> Any:
            settings = settings_from(db, config)
            try:
                store = open_store(settings.db) if creates else open_existing_store(settings.db)
            except StoreError as exc:
                raise click.UsageError(redact_urls(str(exc))) from exc
            if with_settings:
                kwargs["settings"] = settings
            try:
                return command(store, **kwargs)
            except (StoreError, ReportError, BudgetError, AccessError) as exc:
                raise click.ClickException(redact_urls(str(exc))) from exc
            finally:
                store.close()

        return wrapper

    return decorate if func is None else decorate(func)


# --- output -------------------------------------------------------------------------------------
def print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    """Values as plain text (never console markup); folded, not cut, on a narrow terminal,
    and whole when the output is not a terminal."""
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(plain(v) for v in row))
    stdout_console().print(table)
