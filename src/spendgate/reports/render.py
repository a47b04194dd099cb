"""Reports and events as a terminal table, CSV (for finance) or JSON (for scripts)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from spendgate.attribution.model import UNALLOCATED
from spendgate.money import format_usd
from spendgate.reports.spec import ReportResult

NUMBER_COLUMNS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "unpriced_requests",
)


def report_json(result: ReportResult) -> str:
    return orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode()


def report_csv(result: ReportResult) -> str:
    out = io.StringIO()
    rows = [row.as_json() for row in result.rows]
    fields = [*result.by, "cost_usd", *NUMBER_COLUMNS, "estimated_requests", "error_requests"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


def _dim_text(dim: str, value: Any) -> str:
    if value is None:
        return UNALLOCATED if dim == "project" else "—"
    return str(value)


def report_table(
    result: ReportResult, console: Console, title: str | None = None, *, token_columns: bool = True
) -> None:
    table = Table(title=title, show_footer=True)
    total = result.total_cost_usd
    for i, dim in enumerate(result.by):
        table.add_column(dim, footer="total" if i == 0 else "", no_wrap=True)
    # Exact figures are never cut short: money columns don't wrap or truncate.
    table.add_column("cost (USD)", justify="right", footer=format_usd(total), no_wrap=True)
    table.add_column("share", justify="right", footer="100%" if total else "", no_wrap=True)
    table.add_column("requests", justify="right", footer=str(result.total_requests))
    optional = [
        ("input tok", "input_tokens"),
        ("cached", "cached_input_tokens"),
        ("cache write", "cache_write_tokens"),
        ("output tok", "output_tokens"),
    ]
    shown = [
        (label, attr) for label, attr in optional if token_columns and any(getattr(row, attr) for row in result.rows)
    ]
    for label, _ in shown:
        table.add_column(label, justify="right")
    for row in result.rows:
        share = f"{(row.cost_usd / total * 100):.1f}%" if total else "—"
        table.add_row(
            *(_dim_text(dim, row.dims[dim]) for dim in result.by),
            format_usd(row.cost_usd),
            share,
            str(row.requests),
            *(f"{getattr(row, attr):,}" for _, attr in shown),
        )
    console.print(table)
    if result.unpriced_requests:
        console.print(
            f"[yellow]{result.unpriced_requests} request(s) used models with no known price and are NOT in "
            "the total: add them to the SPENDGATE_PRICES file.[/yellow]"
        )


EVENT_TABLE_COLUMNS = (
    "ts",
    "provider",
    "model",
    "project",
    "team",
    "feature",
    "key",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)


def events_table(events: list[dict[str, Any]], console: Console) -> None:
    table = Table()
    for column in EVENT_TABLE_COLUMNS:
        table.add_column(
            column,
            justify="right" if column.endswith(("tokens", "usd")) else "left",
            # Exact figures are never cut short (as in the report table).
            no_wrap=column == "cost_usd",
        )
    for event in events:
        cells = []
        for column in EVENT_TABLE_COLUMNS:
            value = event.get(column)
            if column == "cost_usd" and value is None:
                value = "unpriced"
            elif column == "cost_usd" and event.get("estimated"):
                value = f"~{value}"
            cells.append("—" if value is None else str(value))
        table.add_row(*cells)
    console.print(table)
