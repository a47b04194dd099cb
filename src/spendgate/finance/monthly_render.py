"""The monthly finance report written out: JSON and CSV exact; HTML and PDF drawn from one
document (``monthly_document.py``) rounded to cents with largest remainder, so each table's
rounded lines sum to its rounded total."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

from spendgate.finance.html import document_html
from spendgate.finance.monthly import MonthlyReport
from spendgate.finance.monthly_document import monthly_document
from spendgate.money import format_usd
from spendgate.reports.csv_export import SafeWriter

CSV_COLUMNS = ("section", "name", "team", "cost_usd", "previous_cost_usd", "budget_usd", "ytd_cost_usd")
# Anomalies and approvals have figures of their own: columns after the others, empty elsewhere.
EVENT_COLUMNS = ("window", "expected_usd", "score", "status", "decided_by", "decided_at", "detail")


def monthly_json(report: MonthlyReport) -> str:
    return json.dumps(report.as_json(), indent=2)


def monthly_csv(report: MonthlyReport) -> str:
    """One line per figure, exact (a spreadsheet or ledger import rounds as it likes)."""
    data = report.as_json()
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow((*CSV_COLUMNS, *EVENT_COLUMNS))

    def line(section: str, name: Any, team: Any = "", cost: Any = "", prev: Any = "", budget: Any = "", ytd: Any = ""):
        writer.writerow(
            [section, "" if name is None else name, team or "", cost or "", prev or "", budget or "", ytd or ""]
            + [""] * len(EVENT_COLUMNS)
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
    for a in data["anomalies"]:
        window = f"{a['start']}/{a['end']}"
        drivers = ";".join(f"{d['dimension']}={d['value']}:{d['excess_usd']}" for d in a["drivers"])
        writer.writerow(["anomaly", a["scope"], "", a["cost_usd"], "", "", "", window, a["expected_usd"], a["score"],
                         a["status"], "", "", drivers])  # fmt: skip
    for a in data["approvals"]:
        writer.writerow(["approval", a["budget"], "", a["extra_usd"], "", "", "", a["window"], "", "", a["status"],
                         a["decided_by"] or "", a["decided_at"] or "", a["reason"] or ""])  # fmt: skip
    return out.getvalue()


def monthly_html(report: MonthlyReport) -> str:
    return document_html(monthly_document(report))


def monthly_pdf(report: MonthlyReport) -> bytes:
    # fpdf2 (with Pillow, fontTools and NumPy behind it) costs ~35 MiB and ~0.3 s to import:
    # only a PDF pays for it, never `serve` on its request path.
    from spendgate.finance.pdf import document_pdf

    return document_pdf(monthly_document(report))


def usd_text(value: Decimal | None) -> str:
    return "" if value is None else format_usd(value)
