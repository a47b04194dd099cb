"""The monthly finance report as a document (``finance/document.py``): what the HTML page and
the PDF both show, in order, every figure rounded to cents once, here (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from spendgate.finance.document import Block, Document, Figures, Heading, Paragraph, money_table, usd
from spendgate.finance.monthly import MonthlyReport
from spendgate.finance.rounding import round_total

INTRO = (
    "LLM and other AI spend from the spendgate ledger. Figures are exact in the JSON and CSV versions;"
    " here they are rounded to cents so that every table's lines add up to its total."
)


def monthly_document(report: MonthlyReport) -> Document:
    change = report.change_percent
    f = report.forecast
    coverage = "—" if report.coverage is None else f"{report.coverage:.2f}%"
    blocks: list[Block] = [
        Paragraph(INTRO, note=True),
        Heading("Executive summary"),
        Figures(
            (
                ("Total", usd(round_total(report.total))),
                ("Previous month", usd(round_total(report.previous))),
                ("Change", "—" if change is None else f"{change:+}%"),
                (f"Forecast {f['month']}", usd(round_total(f["projected_usd"]))),
            )
        ),
        Heading("Top drivers of change", level=3),
        money_table(
            ["driver", "this month", "previous month", "change"],
            [
                [f"{d['dimension']} {d['value'] or '(none)'}", d["cost_usd"], d["previous_cost_usd"], d["change_usd"]]
                for d in report.drivers
            ],
            (1, 2, 3),
            None,
        ),
        Heading("Cost centers: budget vs actual"),
        money_table(
            ["cost center", "spend", "budget", "remaining", "year to date"],
            [
                [c["cost_center"], c["cost_usd"], c["budget_usd"], c["budget_remaining_usd"], c["ytd_cost_usd"]]
                for c in report.cost_centers
            ],
            (1, 2, 3, 4),
            "Total",
        ),
        Heading("Teams"),
        money_table(["team", "spend"], [[t["team"], t["cost_usd"]] for t in report.teams], (1,), "Total"),
        Heading("Projects"),
        money_table(
            ["project", "team", "spend"],
            [[p["project"], p["team"], p["cost_usd"]] for p in report.projects],
            (2,),
            "Total",
        ),
        Heading("Other costs"),
        money_table(
            ["category", "team", "amount"],
            [[o["category"], o["team"], o["cost_usd"]] for o in report.other_costs],
            (2,),
            "Total",
        ),
        Heading("Allocation"),
        Paragraph(
            f"Allocation coverage (spend with a team before allocation): {coverage}. Rules applied: "
            f"{', '.join(report.allocation['rules_applied']) or 'none'}."
        ),
        money_table(
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
        *_anomalies(report.anomalies),
        *_approvals(report.approvals),
        Heading("Forecast"),
        Paragraph(
            f"{f['month']}: {usd(round_total(f['projected_usd']))} (80% interval "
            f"{usd(round_total(f['low_usd']))} – {usd(round_total(f['high_usd']))})."
        ),
        Paragraph(f["method"], note=True),
    ]
    return Document(f"Finance report — {report.month}", report.month, report.ledger_id, tuple(blocks))


def window_text(start: str, end: str) -> str:
    """An anomaly's [start, end) as the report prints it: minutes, UTC (the JSON has the instants)."""
    return f"{start[:16].replace('T', ' ')} – {end[:16].replace('T', ' ')} UTC"


def drivers_text(drivers: list[dict[str, Any]]) -> str:
    """What drove an anomaly, largest excess first: ``model gpt-4o +$1.23``."""
    ordered = sorted(drivers, key=lambda d: -Decimal(d["excess_usd"]))
    return "; ".join(f"{d['dimension']} {d['value']} +{usd(round_total(Decimal(d['excess_usd'])))}" for d in ordered)


def _anomalies(anomalies: list[dict[str, Any]]) -> list[Block]:
    heading = Heading("Anomalies")
    if not anomalies:
        return [heading, Paragraph("None recorded for the month.", note=True)]
    table = money_table(
        ["scope", "window", "actual", "expected", "score", "status", "drivers"],
        [
            [
                a["scope"],
                window_text(a["start"], a["end"]),
                Decimal(a["cost_usd"]),
                Decimal(a["expected_usd"]),
                a["score"],
                a["status"],
                drivers_text(a["drivers"]) or "—",
            ]
            for a in anomalies
        ],
        (2, 3),
        None,  # overlapping scopes (org and a team in it) would count one spike twice: no total
        figures=(4,),
    )
    return [heading, table]


def _approvals(approvals: list[dict[str, Any]]) -> list[Block]:
    heading = Heading("Approved extra spend")
    if not approvals:
        return [heading, Paragraph("No extra spend approved in the month.", note=True)]
    table = money_table(
        ["budget", "window", "amount", "reason", "approved by", "approved at"],
        [
            [
                a["budget"],
                a["window"],
                Decimal(a["extra_usd"]),
                a["reason"] or "",
                a["decided_by"] or "—",
                (a["decided_at"] or "")[:16].replace("T", " "),
            ]
            for a in approvals
        ],
        (2,),
        "Total",
    )
    return [heading, table]
