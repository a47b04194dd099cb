"""What every `spendgate` command shares: settings from flags, a store from --db, output."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from spendgate.budgets.model import BudgetError
from spendgate.ledger.store import StoreError, open_store
from spendgate.redact import redact_urls
from spendgate.reports.spec import ReportError
from spendgate.settings import Settings, SettingsError, load_settings


def settings_from(db: str | None, config: str | None, **flags: Any) -> Settings:
    try:
        return load_settings({"db": db, **flags}, config_path=config)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def db_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--db and --config on every command, resolved into a Store the command can use."""

    @click.option("--db", "db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
    @click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
    @functools.wraps(func)
    def wrapper(db: str | None, config: str | None, **kwargs: Any) -> Any:
        settings = settings_from(db, config)
        try:
            store = open_store(settings.db)
        except StoreError as exc:
            raise click.UsageError(redact_urls(str(exc))) from exc
        try:
            return func(store, **kwargs)
        except (StoreError, ReportError, BudgetError) as exc:
            raise click.ClickException(redact_urls(str(exc))) from exc
        finally:
            store.close()

    return wrapper


def print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    table = Table()
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("—" if v is None else str(v) for v in row))
    Console().print(table)
