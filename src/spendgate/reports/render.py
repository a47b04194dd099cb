"""Reports and events as a terminal table, CSV (for finance) or JSON (for scripts).

Everything shown in a table that came from a request or a user (feature, customer, key and
tag names…) is passed to rich as ``Text``, never as a string: a string would be parsed as
console markup, so ``[/oops]`` would crash the command and ``[link=…]`` become a link.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spendgate.attribution.model import UNALLOCATED
from spendgate.money import format_usd
from spendgate.reports.csv_export import csv_text
from spendgate.reports.spec import ReportResult, ReportRow

# Report figures after the dimensions, in CSV column order. Each row's cost sums its priced
# requests; ``unpriced_requests`` counts the ones left out of it (all of them: no cost).
REPORT_FIGURES = (
    "cost_usd",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "unpriced_requests",
    "estimated_requests",
    "error_requests",
)

# Without a terminal (a pipe, a file, a CI log) nothing limits the width: a table is as wide
# as its content, so no value is ever cut short ("r…") for want of 80 columns.
UNBOUNDED_WIDTH = 100_000


def stdout_console() -> Console:
    """The console commands print to: the terminal's width on a terminal, unbounded otherwise."""
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=UNBOUNDED_WIDTH)
    return console


def plain(value: Any, missing: str = "—") -> Text:
    """A cell shown exactly as it is: no markup, no emoji codes, no highlighting."""
    return Text(missing if value is None else str(value))


# --- JSON and CSV ---------------------------------------------------------------------------
def report_json(result: ReportResult) -> str:
    return orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode()


def _report_csv_row(row: ReportRow) -> dict[str, Any]:
    figures: dict[str, Any] = {name: getattr(row, name) for name in REPORT_FIGURES}
    figures["cost_usd"] = row.cost_usd if row.cost_known else None
    return {**row.dim_values(), **figures}


# What the totals line of a CSV report says in its first dimension column.
TOTAL_LABEL = "total"


def report_csv(result: ReportResult, *, totals: bool = True) -> str:
    """One line per row, then (when the report has dimensions, and ``totals``) a totals line:
    ``total`` in the first dimension column, the other dimensions empty, every figure summed."""
    rows = [_report_csv_row(row) for row in result.rows]
    if totals and result.by:
        total = result.totals()
        line = _report_csv_row(total)
        line["cost_usd"] = result.total_cost_usd if result.cost_known else None
        rows.append({**line, result.by[0]: TOTAL_LABEL})
    return csv_text([*result.by, *REPORT_FIGURES], rows)


# Event fields in CSV column order (the JSON object's keys).
EVENT_CSV_COLUMNS = (
    "id",
    "ts",
    "provider",
    "model",
    "endpoint",
    "stream",
    "project",
    "team",
    "cost_center",
    "feature",
    "environment",
    "customer",
    "key",
    "trace_id",
    "tags",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost_usd",
    "priced",
    "rates",
    "price_source",
    "status",
    "http_status",
    "estimated",
    "latency_ms",
    "upstream_request_id",
    "service_tier",
    "source",
    "external_id",
    "client_reported",
)


def events_csv(events: Sequence[dict[str, Any]]) -> str:
    """Events as listed in JSON, one per line; ``tags`` and ``rates`` as JSON text."""
    rows = []
    for event in events:
        cost = event.get("cost_usd")
        rows.append({**event, "cost_usd": None if cost is None else Decimal(cost)})
    return csv_text(EVENT_CSV_COLUMNS, rows)


# --- tables ----------------------------------------------------------------------------------
def _dim_text(dim: str, value: Any) -> Text:
    if value is None:
        return plain(UNALLOCATED if dim == "project" else "—")
    return plain(value)


def _cost_text(row: ReportRow) -> Text:
    return Text(format_usd(row.cost_usd) if row.cost_known else "unpriced")


def report_table(
    result: ReportResult, console: Console, title: str | None = None, *, token_columns: bool = True
) -> None:
    table = Table(title=title, show_footer=True)
    total = result.total_cost_usd
    for i, dim in enumerate(result.by):
        # Folded, not cut, when the terminal is narrow: a value is shown whole or not at all.
        table.add_column(plain(dim), footer="total" if i == 0 else "", overflow="fold")
    # Exact figures are never cut short: money columns don't wrap or truncate.
    total_text = format_usd(total) if result.cost_known else "unpriced"
    table.add_column("cost (USD)", justify="right", footer=total_text, no_wrap=True)
    table.add_column("share", justify="right", footer="100%" if total else "", no_wrap=True)
    table.add_column("requests", justify="right", footer=str(result.total_requests))
    optional = [
        ("unpriced", "unpriced_requests"),
        ("input tok", "input_tokens"),
        ("cached", "cached_input_tokens"),
        ("cache write", "cache_write_tokens"),
        ("output tok", "output_tokens"),
        ("reasoning", "reasoning_tokens"),
    ]
    shown = [
        (label, attr)
        for label, attr in optional
        if (token_columns or attr == "unpriced_requests") and any(getattr(row, attr) for row in result.rows)
    ]
    totals = result.totals()
    for label, attr in shown:
        table.add_column(label, justify="right", footer=f"{getattr(totals, attr):,}")
    for row in result.rows:
        share = f"{(row.cost_usd / total * 100):.1f}%" if total and row.cost_known else "—"
        table.add_row(
            *(_dim_text(dim, row.dims[dim]) for dim in result.by),
            _cost_text(row),
            share,
            str(row.requests),
            *(f"{getattr(row, attr):,}" for _, attr in shown),
        )
    console.print(table)
    if result.unpriced_requests:
        console.print(
            f"[yellow]{result.unpriced_requests} request(s) used models with no known price and are NOT in "
            "the costs: add them to the SPENDGATE_PRICES file.[/yellow]"
        )


EVENT_TABLE_COLUMNS = (
    "ts",
    "provider",
    "model",
    "project",
    "team",
    "feature",
    "key",
    "source",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)


def events_table(events: list[dict[str, Any]], console: Console) -> None:
    table = Table()
    for column in EVENT_TABLE_COLUMNS:
        figure = column.endswith(("tokens", "usd"))
        table.add_column(
            column,
            justify="right" if figure else "left",
            # Exact figures are never cut short (as in the report table); text folds.
            no_wrap=column == "cost_usd",
            overflow="fold",
        )
    for event in events:
        cells = []
        for column in EVENT_TABLE_COLUMNS:
            value = event.get(column)
            if column == "cost_usd" and value is None:
                value = "unpriced"
            elif column == "cost_usd" and event.get("estimated"):
                value = f"~{value}"
            cells.append(plain(value))
        table.add_row(*cells)
    console.print(table)
