"""Request-path cost of learned reservations (issue 13).

    python bench/bench_reservation.py [--loops 200000] [--models 50] [--projects 40]

Learned mode (``reservation = "learned"``) asks the immutable table built by
``budgets/reservations.py`` what a request without ``max_tokens`` reserves. Timed here, per
request, in µs (best of 5 rounds of ``--loops`` lookups, so per-call overhead of the timer
is amortised):

- the lookup in strict mode (the mode test only);
- the lookup in learned mode: a project hit, a fallback to the model across projects, a
  dated model name resolved by family, and a miss (strict bound);
- the whole output estimate (``reservation_tokens``) with and without a learned value;
- off the request path, for scale: building the table from ``models x projects`` groups of
  1,000 samples (what a refresh does every five minutes after reading the ledger);
- with ``--ledger-events N``: a whole refresh's ledger read (``recent_output_tokens``: the
  latest 1,000 events per model and project of the last 7 days) on a fresh SQLite ledger (or
  ``--db URL``, an empty PostgreSQL database) holding N synthetic events of 30 days.

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spendgate.budgets.estimate import reservation_tokens
from spendgate.budgets.output_model import STRICT, OutputModelParams
from spendgate.budgets.reservations import SAMPLE_LOOKBACK, SAMPLES_PER_GROUP, ReservationTable, build_table
from spendgate.ledger.store import open_store

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Summarise this ticket in two lines."}]}


def per_call(step: Callable[[], object], loops: int) -> float:
    return min(timeit.repeat(step, number=loops, repeat=5)) / loops * 1e6


def ledger_refresh(db: str | None, events: int) -> None:
    from synthetic_events import Synthetic  # bench/, on the path when run as a script

    with tempfile.TemporaryDirectory() as folder:
        store = open_store(db or f"sqlite:///{Path(folder) / 'ledger.db'}")
        try:
            now = datetime.now(UTC)
            for batch in Synthetic(now - timedelta(days=30), 30).batches(events, 5000):
                store.append_events(batch)
            timings = []
            for _ in range(3):
                started = time.perf_counter()
                samples = store.recent_output_tokens(now - SAMPLE_LOOKBACK, SAMPLES_PER_GROUP)
                table = build_table(samples, OutputModelParams())
                timings.append(time.perf_counter() - started)
            print(
                f"refresh from a ledger of {events:,} events: {min(timings) * 1e3:.0f} ms"
                f" ({sum(map(len, samples.values())):,} samples in {len(samples)} groups, {len(table.learned)} learned)"
            )
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=200_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--ledger-events", type=int, default=0, help="also time a refresh's ledger read")
    parser.add_argument("--db", default=None, help="an empty ledger database for --ledger-events (default: SQLite)")
    args = parser.parse_args()
    if min(args.loops, args.models, args.projects) < 1 or args.ledger_events < 0:
        parser.error("--loops, --models and --projects must be at least 1, --ledger-events at least 0")

    rng = random.Random(13)
    models = ["gpt-4o", *(f"model-{i}" for i in range(args.models - 1))]
    samples = {
        (f"{model}-2024-08-06" if model == "gpt-4o" else model, f"project-{p}"): [
            int(rng.lognormvariate(5, 0.8)) for _ in range(1000)
        ]
        for model in models
        for p in range(args.projects)
    }
    started = time.perf_counter()
    table = build_table(samples, OutputModelParams())
    built_ms = (time.perf_counter() - started) * 1e3
    strict = ReservationTable(STRICT)

    rows = [
        ("strict mode: lookup", lambda: strict.output_tokens("gpt-4o", "project-1")),
        ("learned: project hit", lambda: table.output_tokens("gpt-4o", "project-1")),
        ("learned: model fallback (unknown project)", lambda: table.output_tokens("gpt-4o", "elsewhere")),
        ("learned: dated name, by family", lambda: table.output_tokens("gpt-4o-2024-08-06", "project-1")),
        ("learned: nothing learned (strict bound)", lambda: table.output_tokens("o3", "project-1")),
        ("reservation_tokens, strict", lambda: reservation_tokens("chat", "gpt-4o", BODY)),
        (
            "reservation_tokens + learned lookup",
            lambda: reservation_tokens("chat", "gpt-4o", BODY, table.output_tokens("gpt-4o", "project-1")),
        ),
    ]
    print(f"table: {len(table.learned)} entries from {len(samples)} groups x 1,000 samples, built in {built_ms:.0f} ms")
    for name, step in rows:
        print(f"{name:<45} {per_call(step, args.loops):7.3f} µs per request")
    if args.ledger_events:
        ledger_refresh(args.db, args.ledger_events)


if __name__ == "__main__":
    main()
