"""A backfill through `spendgate ingest`: records/s on each backend, and the same file again.

    python bench/bench_ingest.py [--records 1000000] [--backend sqlite|postgresql|both]
        [--batch-size 5000] [--format jsonl|csv] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
        [--workdir /tmp/spendgate-bench-ingest] [--keep]

Writes ``--records`` usage records (the /v1/usage record: id, ts spread over 180 days, provider,
model among 8, tokens with cache reads, project among 12 of 4 teams, customer among 400, a tag)
to a file, makes a fresh ledger with its teams and projects, and runs the real command,
``spendgate ingest FILE --json`` with its progress bar, as a subprocess: the rate is the
command's wall time (start-up included: ~1 s) over the records stored. Then it runs the same
file with ``--restart`` (every record read, priced and found to be a duplicate) and checks the
ledger holds each record once and the report's request count equals the file's.

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("openai", "text-embedding-3-small"),
]
TEAMS = {f"team-{t}": [f"project-{t}-{p}" for p in range(3)] for t in range(4)}
SCHEMA = "bench_ingest"


def write_records(path: Path, n: int, fmt: str, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    projects = [p for ps in TEAMS.values() for p in ps]
    fields = [
        "id",
        "ts",
        "provider",
        "model",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "project",
        "customer",
        "tag:agent",
    ]
    with path.open("w") as f:
        if fmt == "csv":
            f.write(",".join(fields) + "\n")
        for i in range(n):
            provider, model = MODELS[i % len(MODELS)]
            input_tokens = rng.randint(50, 20_000)
            record = {
                "id": f"rec-{i:09d}",
                "ts": (start + timedelta(seconds=i * 180 * 86400 // max(n, 1))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "provider": provider,
                "model": model,
                "input_tokens": input_tokens,
                "cached_input_tokens": input_tokens // 3,
                "output_tokens": rng.randint(0, 2_000),
                "project": projects[i % len(projects)],
                "customer": f"cust-{rng.randint(0, 399)}",
                "tag:agent": f"agent-{i % 5}",
            }
            if fmt == "csv":
                f.write(",".join(str(record[name]) for name in fields) + "\n")
            else:
                record["tags"] = {"agent": record.pop("tag:agent")}
                f.write(json.dumps(record) + "\n")


def postgres_url(server: str, schema: str) -> str:
    return f"{server}{'&' if '?' in server else '?'}options={quote(f'-csearch_path={schema}', safe='')}"


def fresh_ledger(backend: str, args: argparse.Namespace) -> str:
    from spendgate import management
    from spendgate.ledger.store import open_store

    if backend == "sqlite":
        path = args.workdir / "ledger.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        import psycopg

        with psycopg.connect(args.postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        url = postgres_url(args.postgres_url, SCHEMA)
    store = open_store(url)
    try:
        for team, projects in TEAMS.items():
            management.create_team(store, team)
            for project in projects:
                management.create_project(store, project, team)
    finally:
        store.close()
    return url


def ingest(url: str, path: Path, args: argparse.Namespace, *extra: str) -> tuple[float, dict[str, Any]]:
    command = [sys.executable, "-m", "spendgate", "ingest", str(path), "--db", url, "--json",
               "--batch-size", str(args.batch_size), "--progress", *extra]  # fmt: skip
    started = time.perf_counter()
    # The progress bar goes to this terminal (stderr); the outcome comes back as JSON.
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env={**os.environ, "COLUMNS": "100"})
    return time.perf_counter() - started, json.loads(done.stdout)


def bench(backend: str, path: Path, args: argparse.Namespace) -> None:
    from spendgate.ledger.store import open_store
    from spendgate.reports.spec import ReportQuery

    url = fresh_ledger(backend, args)
    seconds, first = ingest(url, path, args)
    assert first["accepted"] == args.records and first["rejected"] == 0, first
    print(f"{backend}: {args.records:,} records stored in {seconds:.1f} s: {args.records / seconds:,.0f} records/s")
    seconds_again, again = ingest(url, path, args, "--restart")
    assert again["accepted"] == 0 and again["duplicates"] == args.records, again
    print(
        f"{backend}: the same file again: {seconds_again:.1f} s"
        f" ({args.records / seconds_again:,.0f} records/s), all duplicates"
    )
    store = open_store(url)
    try:
        report = store.report(ReportQuery(by=("source", "team")))
        assert report.total_requests == args.records, report.total_requests
        print(
            f"{backend}: report total {report.total_cost_usd} USD over {report.total_requests:,} requests (each once)"
        )
    finally:
        store.close()
    if backend == "postgresql" and not args.keep:
        import psycopg

        with psycopg.connect(args.postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/spendgate-bench-ingest"))
    parser.add_argument(
        "--keep", action="store_true", help="keep the file, the SQLite ledger and the PostgreSQL schema"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"records-{args.records}.{args.format}"
    started = time.perf_counter()
    write_records(path, args.records, args.format)
    print(
        f"wrote {args.records:,} records ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s"
    )
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        bench(backend, path, args)
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
