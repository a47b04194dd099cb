"""How long the finance report's PDF (and its HTML, from the same document) takes to draw, for
a month with many projects, and how many pages it makes.

    python bench/bench_finance_pdf.py [--projects 2000] [--anomalies 200]

Builds a ``MonthlyReport`` directly (no ledger: the figures' queries are bench_finance.py's),
with ``--projects`` projects over 100 teams, ``--anomalies`` anomalies and as many approvals,
then times ``monthly_document``, ``document_html`` and ``document_pdf`` (once, then the median
of 3 warm runs).

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pypdf import PdfReader

from spendgate.finance.html import document_html
from spendgate.finance.monthly import MonthlyReport
from spendgate.finance.monthly_document import monthly_document
from spendgate.finance.pdf import document_pdf


def timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    warm = []
    for _ in range(3):
        start = time.perf_counter()
        call()
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm), result


def synthetic_report(projects: int, anomalies: int) -> MonthlyReport:
    rng = random.Random(7)

    def cost() -> Decimal:
        return Decimal(rng.randint(1, 10**12)) / Decimal(10**9)

    teams = [f"team-{i:03d}" for i in range(100)]
    project_rows = [
        {"project": f"project-{i:05d}", "team": teams[i % 100], "cost_usd": cost()} for i in range(projects)
    ]
    team_rows = [{"team": t, "cost_usd": cost()} for t in teams]
    total = sum((p["cost_usd"] for p in project_rows), Decimal(0))
    driver = {"dimension": "model", "value": "gpt-4o", "cost_usd": "3", "expected_usd": "1", "excess_usd": "2"}
    return MonthlyReport(
        month="2026-03",
        total=total,
        previous=total / 2,
        drivers=[
            {
                "dimension": "team",
                "value": "team-001",
                "cost_usd": cost(),
                "previous_cost_usd": cost(),
                "change_usd": cost(),
            }
        ]
        * 3,
        cost_centers=[
            {
                "cost_center": f"CC-{i}",
                "cost_usd": cost(),
                "budget_usd": None,
                "budget_remaining_usd": None,
                "ytd_cost_usd": cost(),
            }
            for i in range(20)
        ],
        teams=team_rows,
        projects=project_rows,
        other_costs=[],
        coverage=Decimal("97.5"),
        allocation={"rules_applied": [], "rows": [], "largest_unallocated_pools": []},
        forecast={"month": "2026-04", "projected_usd": total, "low_usd": total, "high_usd": total, "method": "bench"},
        anomalies=[
            {
                "scope": f"team:team-{i % 100:03d}",
                "start": "2026-03-04T14:00:00Z",
                "end": "2026-03-04T15:00:00Z",
                "cost_usd": str(cost()),
                "expected_usd": "1",
                "score": "9.00",
                "status": "open",
                "drivers": [driver],
            }
            for i in range(anomalies)
        ],
        approvals=[
            {
                "budget": f"b-{i}",
                "window": "2026-03",
                "extra_usd": str(cost()),
                "reason": "launch",
                "decided_by": "dana",
                "decided_at": "2026-03-05T10:00:00Z",
            }
            for i in range(anomalies)
        ],
        ledger_id="0123456789abcdef",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--anomalies", type=int, default=200)
    args = parser.parse_args()
    report = synthetic_report(args.projects, args.anomalies)
    first, warm, document = timed(lambda: monthly_document(report))
    print(f"document: first {first * 1000:.0f} ms, warm {warm * 1000:.0f} ms")
    first, warm, html = timed(lambda: document_html(document))
    print(f"html:     first {first * 1000:.0f} ms, warm {warm * 1000:.0f} ms, {len(html) / 1024:.0f} KiB")
    first, warm, pdf = timed(lambda: document_pdf(document))
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    print(f"pdf:      first {first * 1000:.0f} ms, warm {warm * 1000:.0f} ms, {len(pdf) / 1024:.0f} KiB, {pages} pages")


if __name__ == "__main__":
    main()
