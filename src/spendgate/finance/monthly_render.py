"""The monthly finance report written out: JSON and CSV exact; HTML (self-contained, printable)
rounded to cents with largest remainder, so each table's rounded lines sum to its rounded total."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

from spendgate.finance.monthly import MonthlyReport
from spendgate.finance.rounding import round_lines, round_total
from spendgate.money import format_usd
from spendgate.reports.csv_export import SafeWriter

CSV_COLUMNS = ("section", "name", "team", "cost_usd", "previous_cost_usd", "budget_usd", "ytd_cost_usd")


def monthly_json(report: MonthlyReport) -> str:
    return json.dumps(report.as_json(), indent=2)


def monthly_csv(report: MonthlyReport) -> str:
    """One line per figure, exact (a spreadsheet or ledger import rounds as it likes)."""
    data = report.as_json()
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(CSV_COLUMNS)

    def line(section: str, name: Any, team: Any = "", cost: Any = "", prev: Any = "", budget: Any = "", ytd: Any = ""):
        writer.writerow(
            [section, "" if name is None else name, team or "", cost or "", prev or "", budget or "", ytd or ""]
        )

    line("summary", "total", cost=data["total_cost_usd"], prev=data["previous_month_cost_usd"])
    line("summary", "change_percent", cost=data["change_percent"])
    for d in data["top_drivers"]:
        line("top_driver", f"{d['dimension']}={d['value'] or ''}", cost=d["cost_usd"], prev=d["previous_cost_usd"])
    for c in data["cost_centers"]:
        line("cost_center", c["cost_center"], cost=c["cost_usd"], budget=c["budget_usd"], ytd=c["ytd_cost_usd"])
    for t in data["teams"]:
        line("team", t["team"], cost=t["cost_usd"])
    for p in data["projects"]:
        line("project", p["project"], team=p["team"], cost=p["cost_usd"])
    for o in data["other_costs"]:
        line("other_cost", o["category"], team=o["team"], cost=o["cost_usd"])
    line("summary", "other_costs", cost=data["other_costs_usd"])
    line("summary", "allocation_coverage_percent", cost=data["allocation_coverage_percent"])
    line("summary", "forecast_next_month", cost=data["forecast_next_month_usd"])
    return out.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1a1a1a;margin:2rem auto;max-width:60rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:1.8rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;font-size:.92rem} th,td{padding:.3rem .5rem;border-bottom:1px solid #eee}
th{text-align:left;background:#f5f5f5} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #999} .kpis{display:flex;gap:1rem;flex-wrap:wrap}
.kpi{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:10rem} .kpi b{display:block;font-size:1.3rem}
.note{color:#555;font-size:.85rem} .over{color:#b00020}
@media print{body{margin:0;max-width:none} h2{break-after:avoid} table{break-inside:auto} tr{break-inside:avoid}}
@page{size:A4;margin:1.5cm}
"""


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def _table(headers: Sequence[str], rows: list[list[Any]], money: Sequence[int], total_label: str | None) -> str:
    """Rows of text and Decimals; the ``money`` columns are rounded by largest remainder and,
    with ``total_label``, totalled (the rounded lines add up to the rounded total shown)."""
    rounded = {c: round_lines([r[c] or Decimal(0) for r in rows]) for c in money}
    head = "".join(f'<th class="{"n" if i in money else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = []
    for r_i, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            if c in money:
                text = "—" if value is None else _usd(rounded[c][r_i])
                cells.append(f'<td class="n">{text}</td>')
            else:
                cells.append(f"<td>{escape('(none)' if value is None else str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if total_label is not None:
        cells = [f"<td>{escape(total_label)}</td>"]
        for c in range(1, len(headers)):
            total = round_total(sum((r[c] or Decimal(0) for r in rows), Decimal(0))) if c in money else None
            cells.append(f'<td class="n">{_usd(total)}</td>' if c in money else "<td></td>")
        body.append(f'<tr class="total">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def monthly_html(report: MonthlyReport) -> str:
    change = report.change_percent
    f = report.forecast
    parts = [
        f"<h1>Finance report — {escape(report.month)}</h1>",
        '<p class="note">LLM and other AI spend from the spendgate ledger. Figures are exact in the JSON and CSV'
        " versions; here they are rounded to cents so that every table's lines add up to its total.</p>",
        "<h2>Executive summary</h2><div class='kpis'>",
        f"<div class='kpi'>Total<b>{_usd(round_total(report.total))}</b></div>",
        f"<div class='kpi'>Previous month<b>{_usd(round_total(report.previous))}</b></div>",
        f"<div class='kpi'>Change<b>{'—' if change is None else f'{change:+}%'}</b></div>",
        f"<div class='kpi'>Forecast {escape(f['month'])}<b>{_usd(round_total(f['projected_usd']))}</b></div>",
        "</div><h3>Top drivers of change</h3>",
        _table(
            ["driver", "this month", "previous month", "change"],
            [
                [f"{d['dimension']} {d['value'] or '(none)'}", d["cost_usd"], d["previous_cost_usd"], d["change_usd"]]
                for d in report.drivers
            ],
            (1, 2, 3),
            None,
        ),
        "<h2>Cost centers: budget vs actual</h2>",
        _table(
            ["cost center", "spend", "budget", "remaining", "year to date"],
            [
                [c["cost_center"], c["cost_usd"], c["budget_usd"], c["budget_remaining_usd"], c["ytd_cost_usd"]]
                for c in report.cost_centers
            ],
            (1, 2, 3, 4),
            "Total",
        ),
        "<h2>Teams</h2>",
        _table(["team", "spend"], [[t["team"], t["cost_usd"]] for t in report.teams], (1,), "Total"),
        "<h2>Projects</h2>",
        _table(
            ["project", "team", "spend"],
            [[p["project"], p["team"], p["cost_usd"]] for p in report.projects],
            (2,),
            "Total",
        ),
        "<h2>Other costs</h2>",
        _table(
            ["category", "team", "amount"],
            [[o["category"], o["team"], o["cost_usd"]] for o in report.other_costs],
            (2,),
            "Total",
        ),
        "<h2>Allocation</h2>",
        f"<p>Allocation coverage (spend with a team before allocation): <b>"
        f"{'—' if report.coverage is None else f'{report.coverage:.2f}%'}</b>. Rules applied: "
        f"{escape(', '.join(report.allocation['rules_applied']) or 'none')}.</p>",
        _table(
            ["team", "direct", "allocated in", "allocated out", "after allocation"],
            [
                [
                    r["team"],
                    *(Decimal(r[k]) for k in ("direct_cost_usd", "allocated_in_usd", "allocated_out_usd", "cost_usd")),
                ]
                for r in report.allocation["rows"]
            ],
            (1, 2, 3, 4),
            "Total",
        ),
        "<h2>Anomalies</h2>",
        "<p class='note'>None recorded for the month.</p>" if not report.anomalies else "",
        "<h2>Forecast</h2>",
        f"<p>{escape(f['month'])}: {_usd(round_total(f['projected_usd']))} (80% interval "
        f"{_usd(round_total(f['low_usd']))} – {_usd(round_total(f['high_usd']))}).</p>",
        f"<p class='note'>{escape(f['method'])}</p>",
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Finance report {escape(report.month)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )


def usd_text(value: Decimal | None) -> str:
    return "" if value is None else format_usd(value)
