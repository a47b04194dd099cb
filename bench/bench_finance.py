"""The finance deliverables at scale: a month's finance report, FOCUS export and allocated
report over a ledger of synthetic events.

    python bench/bench_finance.py [--events 200000] [--backend sqlite|postgresql|both] [--days 60]
        [--sqlite-path /tmp/bench-finance.db] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
        [--keep] [--reuse]

Fills a fresh ledger with ``--events`` events (``synthetic_events``: 36 projects of 12 teams over
``--days`` days from 2025-01-01) through ``store.append_events``, adds an allocation rule, then
times (once, then the median of 3 warm runs) for January 2025: ``build_monthly`` (the JSON
report's figures), the FOCUS export (its query and writing the CSV, then the Parquet file when
pyarrow is installed), ``report --allocated --by team``, and the PDFs (the finance report; a
statement per team). Checks the FOCUS BilledCost sum of
both files against the month's report total.

``--keep`` leaves the ledger (the SQLite file, the PostgreSQL schema) in place at the end;
``--reuse`` opens a kept one (migrations applied first) and skips the fill when it already
holds ``--events`` events (one holding another count is refused: rerun without ``--reuse``).

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_ledger_scale import drop_postgres_schema, postgres_store, sqlite_store
from spendgate.cli.export import list_rates
from spendgate.finance.allocated import allocated_report
from spendgate.finance.allocation import Pool, Rule
from spendgate.finance.focus import focus_rows
from spendgate.finance.focus_files import ParquetUnavailable, pyarrow_modules, write_focus
from spendgate.finance.monthly import build_monthly
from spendgate.finance.monthly_document import monthly_document
from spendgate.finance.pdf import document_pdf
from spendgate.finance.statements import build_statements, statement_document
from spendgate.reports.spec import ReportQuery
from synthetic_events import Synthetic

SCHEMA = "bench_finance"


def create_postgres_schema(server: str, schema: str) -> None:
    """--reuse with nothing kept yet: an empty schema to fill."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


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


def export(store: Any, out: Path, fmt: str) -> Decimal:
    """The command's path: the query, the list prices, the rows, the file."""
    rows = focus_rows(store.focus_groups(*JANUARY), store.ledger_id(), list_rates())
    return write_focus(rows, out, fmt).billed_cost_usd


def fill(store: Any, args: argparse.Namespace, label: str) -> None:
    """Store ``--events`` events, unless ``--reuse`` finds them there already."""
    if args.reuse:
        applied = store.migrate()
        held = store.report(ReportQuery()).total_requests
        if applied:
            print(f"{label}: migrations applied: {', '.join(applied)}", flush=True)
        if held == args.events:
            print(f"{label}: reusing the ledger's {held:,} events", flush=True)
            ensure_allocation_rule(store)
            return
        if held:
            raise SystemExit(
                f"{label}: the kept ledger holds {held:,} events, not {args.events:,}: run without --reuse"
            )
    synthetic = Synthetic(datetime(2025, 1, 1, tzinfo=UTC), args.days)
    start = time.perf_counter()
    for batch in synthetic.batches(args.events, 2000):
        store.append_events(batch)
    print(f"{label}: {args.events:,} events stored in {time.perf_counter() - start:,.1f} s", flush=True)
    ensure_allocation_rule(store)


def ensure_allocation_rule(store: Any) -> None:
    """The rule ``report --allocated`` applies (a kept ledger filled elsewhere may lack it)."""
    if not any(rule.name == "shared" for rule in store.list_allocation_rules()):
        store.create_allocation_rule(Rule("shared", Pool.parse("unallocated"), "proportional", "team"))


def monthly_pdf(store: Any) -> int:
    """``finance report --format pdf``: the figures, the document, the PDF."""
    return len(document_pdf(monthly_document(build_monthly(store, "2025-01"))))


def team_statement_pdfs(store: Any) -> int:
    """``statements --by team --format pdf``: one PDF per team."""
    ledger_id = store.ledger_id()
    return sum(len(document_pdf(statement_document(s, ledger_id))) for s in build_statements(store, "2025-01", "team"))


def formats() -> list[str]:
    try:
        pyarrow_modules()
    except ParquetUnavailable as e:
        print(f"  (Parquet not timed: {e})", flush=True)
        return ["csv"]
    return ["csv", "parquet"]


def bench(store: Any, args: argparse.Namespace, label: str) -> None:
    fill(store, args, label)
    month_total = store.report(ReportQuery(since=JANUARY[0], until=JANUARY[1])).total_cost_usd
    with tempfile.TemporaryDirectory() as tmp:
        by_team = ReportQuery(by=("team",), since=JANUARY[0], until=JANUARY[1])
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("finance report (build_monthly, 2025-01)", lambda: build_monthly(store, "2025-01"))
        ]
        for fmt in formats():
            out = Path(tmp) / f"focus.{fmt}"
            assert export(store, out, fmt) == month_total, f"FOCUS {fmt} BilledCost != the month's total"
            calls.append(
                (
                    f"FOCUS export 2025-01, {fmt} ({out.stat().st_size:,} bytes)",
                    lambda o=out, f=fmt: export(store, o, f),
                )
            )
        calls.append(("report --allocated --by team", lambda: allocated_report(store, by_team)))
        calls.append(("finance report as PDF", lambda: monthly_pdf(store)))
        calls.append(("statements --by team as PDF", lambda: team_statement_pdfs(store)))
        rows = sum(1 for _ in (Path(tmp) / "focus.csv").open()) - 1
        print(f"  FOCUS rows for 2025-01: {rows:,}", flush=True)
        for name, call in calls:
            first, warm = timed(call)
            print(f"  {name}: first {first * 1000:,.0f} ms, warm median {warm * 1000:,.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--sqlite-path", default="/tmp/bench-finance.db")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="leave the ledger in place at the end")
    parser.add_argument("--reuse", action="store_true", help="open a kept ledger; fill it only if it is empty")
    args = parser.parse_args()
    if args.events <= 0 or args.days <= 0:
        parser.error("--events and --days must be positive")
    if args.backend in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        store = sqlite_store(path, fresh=not args.reuse)
        try:
            bench(store, args, "sqlite")
        finally:
            store.close()
            if not args.keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
    if args.backend in ("postgresql", "both"):
        if args.reuse:
            create_postgres_schema(args.postgres_url, SCHEMA)
        store = postgres_store(args.postgres_url, SCHEMA, fresh=not args.reuse)
        try:
            bench(store, args, "postgresql")
        finally:
            store.close()
            if not args.keep:
                drop_postgres_schema(args.postgres_url, SCHEMA)


if __name__ == "__main__":
    main()
