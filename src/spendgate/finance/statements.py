"""Chargeback and customer statements: one per owner of a month's spend, lines by project,
model and feature, exact (the figures are one ``report`` query's rows)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from spendgate.attribution.model import UNALLOCATED
from spendgate.finance.document import Block, Document, Figures, Heading, Paragraph, money_table
from spendgate.finance.monthly import month_end, parse_month
from spendgate.ledger.store import Store
from spendgate.money import format_usd
from spendgate.reports.csv_export import SafeWriter
from spendgate.reports.spec import ReportQuery

OWNERS = ("team", "cost_center", "customer")
LINE_DIMENSIONS = ("project", "model", "feature")
UNASSIGNED = "unassigned"  # the statement of spend with no owner of the kind asked
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Statement:
    by: str
    owner: str | None
    month: str
    references: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line["cost_usd"] for line in self.lines), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "by": self.by,
            "owner": self.owner,
            "references": self.references,
            "total_cost_usd": format_usd(self.total),
            "lines": [{**line, "cost_usd": format_usd(line["cost_usd"])} for line in self.lines],
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = SafeWriter(out)
        refs = ";".join(f"{k}={_flat(v)}" for k, v in self.references.items() if v)
        writer.writerow(["month", self.by, "references", *LINE_DIMENSIONS, "requests", "cost_usd"])
        for line in self.lines:
            writer.writerow(
                [
                    self.month,
                    self.owner or "",
                    refs,
                    *(line[d] or "" for d in LINE_DIMENSIONS),
                    line["requests"],
                    format_usd(line["cost_usd"]),
                ]
            )
        writer.writerow([self.month, self.owner or "", refs, "TOTAL", "", "", "", format_usd(self.total)])
        return out.getvalue()

    def file_stem(self) -> str:
        """A file name for the owner that no owner name can turn into a path: unsafe characters
        replaced, and a digest of the real name when anything was replaced or cut."""
        if self.owner is None:  # no real name maps here: a safe name never starts with "_"
            return f"{self.month}-{self.by}-_{UNASSIGNED}"
        name = self.owner
        safe = _SAFE.sub("_", name).strip("._")[:80]
        if safe != name or not safe:
            safe = f"{safe or 'owner'}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"
        return f"{self.month}-{self.by}-{safe}"


def build_statements(store: Store, month: str, by: str) -> list[Statement]:
    if by not in OWNERS:
        raise ValueError(f"--by must be one of {', '.join(OWNERS)}")
    first = parse_month(month)
    result = store.report(ReportQuery(by=(by, *LINE_DIMENSIONS), since=first, until=month_end(first)))
    teams = store.list_teams()
    customers = store.customers() if by == "customer" else {}
    statements: dict[str | None, Statement] = {}
    for row in result.rows:
        owner = row.dims[by]
        if owner not in statements:
            statements[owner] = Statement(by, owner, month, _references(by, owner, teams, customers))
        statements[owner].lines.append(
            {
                "project": row.dims["project"] or UNALLOCATED,
                "model": row.dims["model"],
                "feature": row.dims["feature"],
                "requests": row.requests,
                "cost_usd": row.cost_usd,
            }
        )
    return sorted(statements.values(), key=lambda s: (s.owner is None, s.owner or ""))


def _references(by: str, owner: str | None, teams: list[Any], customers: dict[str, Any]) -> dict[str, Any]:
    """What a billing system joins the statement on: a team's cost center code and purchase-order
    reference; a cost center's teams and their references; a customer's id, name and reference
    (``spendgate teams update``, ``spendgate customers set``)."""
    if by == "team":
        team = next((t for t in teams if t.name == owner), None)
        return {"team": owner, "cost_center": team and team.cost_center, "reference": team and team.reference}
    if by == "cost_center":
        members = sorted((t for t in teams if t.cost_center == owner and owner), key=lambda t: t.name)
        return {
            "cost_center": owner,
            "teams": [t.name for t in members],
            "team_references": {t.name: t.reference for t in members if t.reference},
        }
    customer = customers.get(owner) if owner is not None else None
    return {
        "customer_id": owner,
        "name": customer.name if customer else None,
        "reference": customer.reference if customer else None,
    }


def _flat(value: Any) -> str:
    """A reference as one CSV field: lists joined, a mapping as ``key:value`` pairs."""
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def statement_text(statement: Statement, fmt: str) -> str:
    return json.dumps(statement.as_json(), indent=2) + "\n" if fmt == "json" else statement.as_csv()


REFERENCE_LABELS = {
    "team": "Team",
    "cost_center": "Cost center",
    "reference": "Reference",
    "teams": "Teams",
    "team_references": "Team references",
    "customer_id": "Customer id",
    "name": "Name",
}


def statement_document(statement: Statement, ledger_id: str) -> Document:
    """The statement as a document (``finance/document.py``) for the PDF: its references, its
    lines rounded to cents by largest remainder (they add up to the rounded total shown), and
    the exact total the JSON and CSV carry, so the printed copy reconciles to the digit."""
    owner = statement.owner if statement.owner is not None else UNASSIGNED
    references = tuple((REFERENCE_LABELS.get(k, k), _flat(v) if v else "—") for k, v in statement.references.items())
    lines = money_table(
        ["project", "model", "feature", "requests", "cost"],
        [
            [li["project"], li["model"], li["feature"] or "", f"{li['requests']:,}", li["cost_usd"]]
            for li in statement.lines
        ],
        (4,),
        "Total",
        figures=(3,),
    )
    blocks: tuple[Block, ...] = (
        Figures(references),
        Heading("Spend by project, model and feature"),
        lines,
        Paragraph(f"Exact total: {format_usd(statement.total)} USD (lines rounded to cents by largest remainder)."),
    )
    title = f"Statement — {statement.by.replace('_', ' ')} {owner} — {statement.month}"
    return Document(title, statement.month, ledger_id, blocks)
