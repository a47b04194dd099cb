"""How the finance outputs are written out: ``report --allocated`` as a table, CSV or JSON."""

from __future__ import annotations

import io
import sys

import click

from spendgate.cli.support import print_json, print_table
from spendgate.finance.allocated import allocated_report
from spendgate.ledger.store import Store
from spendgate.reports.csv_export import SafeWriter
from spendgate.reports.spec import ReportQuery

_COLUMNS = ("direct_cost_usd", "allocated_in_usd", "allocated_out_usd", "cost_usd")


def print_allocated(store: Store, query: ReportQuery, fmt: str, *, totals: bool = True) -> None:
    result = allocated_report(store, query)
    data = result.as_json()
    by = result.by
    if fmt == "json":
        print_json(data)
        return
    if fmt == "csv":
        # One line per owner, then one per move (what came from where), then the total.
        out = io.StringIO()
        writer = SafeWriter(out)
        writer.writerow([by, *_COLUMNS, "rule", "pool", "from"])
        for row in data["rows"]:
            writer.writerow([row[by] or "", *(row[c] for c in _COLUMNS), "", "", ""])
            for move in row["allocated_from"]:
                source = move["from"] or ""
                writer.writerow([row[by] or "", "", move["cost_usd"], "", "", move["rule"], move["pool"], source])
        if totals:
            writer.writerow(["TOTAL", "", "", "", data["total_cost_usd"], "", "", ""])
        sys.stdout.write(out.getvalue())
        return
    print_table(
        [by, "direct", "allocated in", "allocated out", "cost_usd", "from"],
        [
            [
                row[by] or "(none)",
                *(row[c] for c in _COLUMNS),
                "; ".join(f"{m['cost_usd']} {m['pool']} ({m['rule']})" for m in row["allocated_from"]),
            ]
            for row in data["rows"]
        ],
    )
    click.echo(f"total {data['total_cost_usd']} USD; allocation coverage {data['allocation_coverage_percent']}%")
    if data["rules_skipped"]:
        click.echo("not applied (another level): " + ", ".join(r["rule"] for r in data["rules_skipped"]))
