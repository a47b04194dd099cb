"""The scheduled finance delivery at scale: what one replica does on the 1st (the month's report
in every format and the statements by team, written atomically into a folder) and on a Monday
(every team's weekly summary), over a ledger of synthetic events.

    python bench/bench_finance_delivery.py [--events 200000] [--backend sqlite|postgresql|both]
        [--sqlite-path /tmp/bench-delivery.db] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

Fills a fresh ledger with ``--events`` events (``synthetic_events``: 36 projects of 12 teams over 60
days from 2025-01-01), then times (once, then the median of 3 warm runs) the documents of January
2025 (``monthly_documents``), writing them (``write_to_directory``) and the summaries of 2025-W03
for every team (``build_weekly``). Not a test: figures vary with the machine; nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_finance import timed
from bench_ledger_scale import drop_postgres_schema, postgres_store, sqlite_store
from spendgate.finance.delivery import monthly_documents, write_to_directory
from spendgate.finance.delivery_config import FinanceConfig
from spendgate.finance.weekly import build_weekly
from synthetic_events import Synthetic

SCHEMA = "bench_finance_delivery"


def bench(store: Any, events: int, label: str) -> None:
    start = time.perf_counter()
    for batch in Synthetic(datetime(2025, 1, 1, tzinfo=UTC), 60).batches(events, 2000):
        store.append_events(batch)
    print(f"{label}: {events:,} events stored in {time.perf_counter() - start:,.1f} s", flush=True)
    config = FinanceConfig(deliver_to="unused", formats=("json", "csv", "html"), statements_by=("team",))
    documents = monthly_documents(store, "2025-01", config)
    size = sum(len(d.content) for d in documents)
    teams = {f"team-{t:02d}" for t in range(12)}  # synthetic_events' teams
    with tempfile.TemporaryDirectory() as tmp:
        for name, call in (
            (f"documents of 2025-01 ({len(documents)} files, {size:,} bytes)",
             lambda: monthly_documents(store, "2025-01", config)),
            ("writing them atomically", lambda: write_to_directory(Path(tmp), "2025-01", documents)),
            (f"weekly summaries of 2025-W03 ({len(teams)} teams)", lambda: build_weekly(store, "2025-W03", teams)),
        ):  # fmt: skip
            first, warm = timed(call)
            print(f"  {name}: first {first * 1000:,.0f} ms, warm median {warm * 1000:,.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--sqlite-path", default="/tmp/bench-delivery.db")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        store = sqlite_store(path, fresh=True)
        try:
            bench(store, args.events, "sqlite")
        finally:
            store.close()
            path.unlink(missing_ok=True)
    if args.backend in ("postgresql", "both"):
        store = postgres_store(args.postgres_url, SCHEMA, fresh=True)
        try:
            bench(store, args.events, "postgresql")
        finally:
            store.close()
            drop_postgres_schema(args.postgres_url, SCHEMA)


if __name__ == "__main__":
    main()
