"""The finance deliverables at scale: a month's finance report, FOCUS export and allocated
report over a ledger of synthetic events.

    python bench/bench_finance.py [--events 200000] [--backend sqlite|postgresql|both] [--days 60]
        [--sqlite-path /tmp/bench-finance.db] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

Fills a fresh ledger with ``--events`` events (``synthetic_events``: 36 projects of 12 teams over
``--days`` days from 2025-01-01) through ``store.append_events``, adds an allocation rule, then
times (once, then the median of 3 warm runs) for January 2025: ``build_monthly`` (the JSON
report's figures), the FOCUS export (its query and writing the CSV) and ``report --allocated
--by team``. Checks the FOCUS BilledCost sum against the month's report total.

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_ledger_scale import drop_postgres_schema, postgres_store, sqlite_store
from spendgate.finance.allocated import allocated_report
from spendgate.finance.allocation import Pool, Rule
from spendgate.finance.focus import COLUMNS, focus_rows
from spendgate.finance.monthly import build_monthly
from spendgate.reports.spec import ReportQuery
from synthetic_events import Synthetic

SCHEMA = "bench_finance"
JANUARY = (date(2025, 1, 1), date(2025, 1, 31))


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    warm = []
    for _ in range(3):
        start = time.perf_counter()
        call()
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm)


def export(store: Any, out: Path) -> Decimal:
    total = Decimal(0)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in focus_rows(store.focus_groups(*JANUARY), store.ledger_id()):
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
            total += Decimal(row["BilledCost"] or 0)
    return total


def bench(store: Any, args: argparse.Namespace, label: str) -> None:
    synthetic = Synthetic(datetime(2025, 1, 1, tzinfo=UTC), args.days)
    start = time.perf_counter()
    for batch in synthetic.batches(args.events, 2000):
        store.append_events(batch)
    print(f"{label}: {args.events:,} events stored in {time.perf_counter() - start:,.1f} s", flush=True)
    store.create_allocation_rule(Rule("shared", Pool.parse("unallocated"), "proportional", "team"))
    month_total = store.report(ReportQuery(since=JANUARY[0], until=JANUARY[1])).total_cost_usd
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "focus.csv"
        assert export(store, out) == month_total, "FOCUS BilledCost != the month's total"
        rows = sum(1 for _ in out.open()) - 1
        by_team = ReportQuery(by=("team",), since=JANUARY[0], until=JANUARY[1])
        for name, call in (
            ("finance report (build_monthly, 2025-01)", lambda: build_monthly(store, "2025-01")),
            (f"FOCUS export 2025-01 ({rows:,} rows)", lambda: export(store, out)),
            ("report --allocated --by team", lambda: allocated_report(store, by_team)),
        ):
            first, warm = timed(call)
            print(f"  {name}: first {first * 1000:,.0f} ms, warm median {warm * 1000:,.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--sqlite-path", default="/tmp/bench-finance.db")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        store = sqlite_store(path, fresh=True)
        try:
            bench(store, args, "sqlite")
        finally:
            store.close()
            path.unlink(missing_ok=True)
    if args.backend in ("postgresql", "both"):
        store = postgres_store(args.postgres_url, SCHEMA, fresh=True)
        try:
            bench(store, args, "postgresql")
        finally:
            store.close()
            drop_postgres_schema(args.postgres_url, SCHEMA)


if __name__ == "__main__":
    main()
