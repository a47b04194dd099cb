"""The ledger at scale: ingest rate, and report and budget latencies over millions of events.

    python bench/bench_ledger_scale.py [--events 10000000] [--backend sqlite|postgresql|both]
        [--days 120] [--batch 2000] [--compare 0] [--index-study] [--drop-caches]
        [--sqlite-path /work/bench-ledger.db] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
        [--schema bench_ledger_scale] [--no-tiers] [--keep]

For each backend: fills a fresh ledger with ``--events`` synthetic events (``synthetic_events``:
36 projects of 12 teams, 400 customers, 12 models, office-hours traffic over ``--days`` days
from 2025-01-01) through ``store.append_events`` in batches of ``--batch`` (the gateway's
writer ships up to 2,000 at a time), and reports the ingest rate (time inside append_events
only; generating events is not counted). Then times, from rollups and from raw events:

- a month's report grouped by team and project (the Done-when figure): on a new store
  object first ("cold-ish": new connection, empty SQLite page cache; with ``--drop-caches``
  the OS page cache is dropped too, PostgreSQL's own buffer cache is not), then warm (median
  of 5);
- a day's report by team and project; a month by customer; a day by trace (raw only);
- the finance dimensions (issue 12): a month by hour (the hourly rollup) and by week and cost
  center, by service tier with a ``--where`` filter, each also from raw events (what a report
  by hour cost before it was planned onto the hourly rollup);
- a budget's spend over a calendar month in America/New_York (team, customer and org scopes),
  in Asia/Kolkata (half-hour edges), and a tag-scoped budget (raw events only).

Rollup answers are checked equal to raw answers. ``--compare N`` first ingests N events into
scratch ledgers with and without rollup maintenance, for the cost of rollups at the same
size. ``--index-study`` times queries with and without the raw ``ts`` index, and (with
``--compare``) ingest with indexes per budget scope added. The SQLite file and the
PostgreSQL schema are deleted at the end unless ``--keep``.

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from spendgate.budgets.model import Scope
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.reports.spec import ReportQuery, parse_where
from synthetic_events import Synthetic

START = datetime(2025, 1, 1, tzinfo=UTC)
SCHEMA = "bench_ledger_scale"


# --- stores ---------------------------------------------------------------------------------
def sqlite_store(path: Path, fresh: bool) -> SQLiteStore:
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return SQLiteStore(path)


def postgres_url(server: str, schema: str) -> str:
    options = quote(f"-csearch_path={schema}", safe="")
    return f"{server}{'&' if '?' in server else '?'}options={options}"


def postgres_store(server: str, schema: str, fresh: bool) -> Any:
    import psycopg

    from spendgate.ledger.store.dialects.postgresql import PostgresStore

    if fresh:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
    return PostgresStore(postgres_url(server, schema))


def drop_postgres_schema(server: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def without_rollups(store: Any) -> None:
    """Skip rollup maintenance (for the with/without comparison only: reports go wrong)."""
    store._add_to_rollups = lambda *args: None
    store._rollups.dims_ids = lambda session, events: ([(0, 0)] * len(events), {})


# --- ingest -----------------------------------------------------------------------------------
def ingest(
    store: Any, n: int, days: int, batch: int, label: str, progress_every: int = 1_000_000, tiers: bool = True
) -> float:
    """Events/s inside append_events."""
    spent, done, last_spent, last_done = 0.0, 0, 0.0, 0
    wall = time.perf_counter()
    for events in Synthetic(START, days, tiers=tiers).batches(n, batch):
        t = time.perf_counter()
        store.append_events(events)
        spent += time.perf_counter() - t
        done += len(events)
        if done - last_done >= progress_every:
            interval = (done - last_done) / (spent - last_spent)
            print(
                f"  {label}: {done:>11,} events  {done / spent:>9,.0f}/s overall  {interval:>9,.0f}/s last"
                f" {done - last_done:,}  (wall {time.perf_counter() - wall:,.0f} s)",
                flush=True,
            )
            last_done, last_spent = done, spent
    rate = done / spent
    print(f"  {label}: {done:,} events in {spent:,.1f} s of append_events: {rate:,.0f} events/s", flush=True)
    return rate


# --- timing -----------------------------------------------------------------------------------
def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = call()
    return (time.perf_counter() - t) * 1000, result


def warm(call: Callable[[], Any], runs: int = 5) -> float:
    return statistics.median(timed(call)[0] for _ in range(runs))


def ms(value: float) -> str:
    return f"{value:9.1f} ms" if value < 10_000 else f"{value / 1000:8.1f} s "


def drop_os_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def month_window(year: int, month: int, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start, end


def queries(open_store: Callable[[], Any], args: argparse.Namespace) -> None:
    month = ReportQuery(by=("team", "project"), since=date(2025, 3, 1), until=date(2025, 3, 31))
    day = ReportQuery(by=("team", "project"), since=date(2025, 3, 12), until=date(2025, 3, 12))
    customers = ReportQuery(by=("customer",), since=date(2025, 3, 1), until=date(2025, 3, 31))
    traces = ReportQuery(by=("trace",), since=date(2025, 3, 12), until=date(2025, 3, 12))

    if args.drop_caches:
        drop_os_caches()
    store = open_store()
    try:
        cold, rolled = timed(lambda: store.report(month))
        print(f"  month by team,project  rollups  first on a new store {ms(cold)}", flush=True)
        print(f"  month by team,project  rollups  warm (median of 5)    {ms(warm(lambda: store.report(month)))}")
        raw_ms, raw = timed(lambda: store.report(month, source="events"))
        print(f"  month by team,project  raw events                     {ms(raw_ms)}", flush=True)
        assert rolled == raw, "rollups and raw events disagree"
        total = f"${rolled.total_cost_usd:,.2f}, {rolled.total_requests:,} requests"
        print(f"    ({len(rolled.rows)} rows, {total}: rollups and raw events equal)")

        print(f"  day by team,project    rollups  warm                  {ms(warm(lambda: store.report(day)))}")
        raw_ms, raw = timed(lambda: store.report(day, source="events"))
        assert store.report(day) == raw
        print(f"  day by team,project    raw events                     {ms(raw_ms)}")
        print(f"  month by customer      rollups  warm                  {ms(warm(lambda: store.report(customers)))}")
        print(f"  day by trace           raw events (ts index)          {ms(warm(lambda: store.report(traces), 3))}")
        finance_dimensions(store)

        ny = month_window(2025, 3, "America/New_York")
        kolkata = month_window(2025, 3, "Asia/Kolkata")
        scopes = [
            ("team:team-03", ny),
            ("customer:cust-0042", ny),
            ("org", ny),
            ("org", kolkata),
        ]
        for text, window in scopes:
            scope = Scope.parse(text)
            planned = warm(lambda scope=scope, window=window: store.spend(scope, *window))
            raw_ms, raw_value = timed(lambda scope=scope, window=window: store.spend(scope, *window, source="events"))
            assert store.spend(scope, *window) == raw_value
            zone = "Kolkata" if window is kolkata else "New York"
            print(f"  spend {text:<20} month ({zone:<8})  rollups {ms(planned)}   raw {ms(raw_ms)}")
        tag = Scope.parse("tag:workflow=wf-7")
        tag_ms = timed(lambda: store.spend(tag, *ny))[0]
        print(f"  spend {'tag:workflow=wf-7':<20} month (New York)  raw only {ms(tag_ms)}")
    finally:
        store.close()


def finance_dimensions(store: Any) -> None:
    """The report dimensions finance asks for first, from rollups and from raw events."""
    march = {"since": date(2025, 3, 1), "until": date(2025, 3, 31)}
    shapes = [
        ("month by hour", ReportQuery(by=("hour",), **march)),
        ("day by hour,team", ReportQuery(by=("hour", "team"), since=date(2025, 3, 12), until=date(2025, 3, 12))),
        ("month by week,cost_center", ReportQuery(by=("week", "cost_center"), **march)),
        (
            "month by tier, where",
            ReportQuery(by=("service_tier",), where=parse_where(["service_tier=flex", "team=team-03"]), **march),
        ),
    ]
    for label, query in shapes:
        rolled_ms = warm(lambda query=query: store.report(query))
        raw_ms, raw = timed(lambda query=query: store.report(query, source="events"))
        assert store.report(query) == raw, label
        print(f"  {label:<26} rollups {ms(rolled_ms)}   raw {ms(raw_ms)}   ({len(raw.rows)} rows)", flush=True)


# --- sizes and indexes --------------------------------------------------------------------------
def execute(store: Any, sql: str) -> None:
    with store.dialect.session() as session:
        session.script(sql)


def sizes(store: Any) -> None:
    if isinstance(store, SQLiteStore):
        path = Path(store.path)
        total = sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists())
        print(f"  size: database file {total / 2**30:.2f} GiB", end="")
        with contextlib.suppress(Exception):
            rows = store._query("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8")
            print(" — " + ", ".join(f"{r[0]} {r[1] / 2**20:,.0f} MiB" for r in rows), end="")
        print()
    else:
        rows = store._query(
            "SELECT c.relname AS name, pg_total_relation_size(c.oid) AS size FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            " ORDER BY 2 DESC LIMIT 6"
        )
        print("  size: " + ", ".join(f"{r['name']} {r['size'] / 2**20:,.0f} MiB (with indexes)" for r in rows))
    for table in ("usage_events", "rollup_hourly", "rollup_daily", "rollup_daily_lean", "rollup_dims"):
        n = store._query(f"SELECT count(*) AS n FROM {table}")[0]
        print(f"    {table:<18} {n['n']:>12,} rows")


def index_study(open_store: Callable[[], Any], args: argparse.Namespace, days: int) -> None:
    """What the raw ts index buys, and what an index per budget scope would cost."""
    traces = ReportQuery(by=("trace",), since=date(2025, 3, 12), until=date(2025, 3, 12))
    edge = (datetime(2025, 3, 12, 5, 30, tzinfo=UTC), datetime(2025, 3, 12, 6, 0, tzinfo=UTC))
    team = Scope.parse("team:team-03")
    store = open_store()

    def run(sql: str) -> None:
        execute(store, sql)

    try:
        with_ts = (warm(lambda: store.report(traces), 3), warm(lambda: store.spend(team, *edge, source="events")))
        run("DROP INDEX usage_events_ts")
        without = (timed(lambda: store.report(traces))[0], timed(lambda: store.spend(team, *edge, source="events"))[0])
        build, _ = timed(lambda: run("CREATE INDEX usage_events_ts ON usage_events (ts)"))
        print(f"  index ts: day by trace {ms(with_ts[0])} with, {ms(without[0])} without")
        print(f"  index ts: a half-hour budget edge (team) {ms(with_ts[1])} with, {ms(without[1])} without")
        print(f"  index ts: rebuilding it took {ms(build)}")
    finally:
        store.close()


# --- main ---------------------------------------------------------------------------------------
def bench(backend: str, args: argparse.Namespace) -> None:
    print(f"\n== {backend}: {args.events:,} events over {args.days} days, batches of {args.batch} ==", flush=True)
    if backend == "sqlite":
        path = Path(args.sqlite_path)

        def make(fresh: bool, name: str = "") -> Any:
            return sqlite_store(path.with_name(path.stem + name + path.suffix), fresh)

        def cleanup(name: str = "") -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path.with_name(path.stem + name + path.suffix)}{suffix}").unlink(missing_ok=True)
    else:

        def make(fresh: bool, name: str = "") -> Any:
            return postgres_store(args.postgres_url, args.schema + name, fresh)

        def cleanup(name: str = "") -> None:
            drop_postgres_schema(args.postgres_url, args.schema + name)

    if args.compare:
        # The same events (as dense in time as the full run's) into fresh ledgers: without
        # rollups, with them, and with them plus the indexes per budget scope we do not have.
        days = max(1, round(args.days * args.compare / args.events))
        configurations = (("without rollups", True, False), ("with rollups", False, False))
        if args.index_study:
            configurations += (("with rollups + (team, ts), (customer, ts)", False, True),)
        for label, strip, scope_indexes in configurations:
            store = make(True, "_compare")
            if strip:
                without_rollups(store)
            if scope_indexes:
                execute(store, "CREATE INDEX bench_team_ts ON usage_events (team, ts)")
                execute(store, "CREATE INDEX bench_customer_ts ON usage_events (customer, ts)")
            try:
                ingest(store, args.compare, days, args.batch, f"compare {label}", progress_every=10**12)
            finally:
                store.close()
                cleanup("_compare")

    if args.events:
        store = make(True)
        try:
            ingest(store, args.events, args.days, args.batch, "ingest with rollups", tiers=not args.no_tiers)
            if not isinstance(store, SQLiteStore):
                execute(store, "VACUUM ANALYZE")  # what autovacuum would have done by the time reports run
            sizes(store)
        finally:
            store.close()
    try:
        queries(lambda: make(False), args)
        if args.index_study:
            index_study(lambda: make(False), args, args.days)
    finally:
        if not args.keep:
            cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="0: reuse a --keep'd ledger")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--compare", type=int, default=0, help="events for the with/without rollups comparison")
    parser.add_argument("--index-study", action="store_true")
    parser.add_argument("--drop-caches", action="store_true", help="drop the OS page cache before the cold query")
    parser.add_argument("--sqlite-path", default=os.environ.get("BENCH_SQLITE_PATH", "/work/bench-ledger.db"))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SPENDGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--no-tiers", action="store_true", help="events name no service tier (as before tiers)")
    parser.add_argument("--schema", default=SCHEMA, help="PostgreSQL schema (dropped and made again)")
    parser.add_argument("--keep", action="store_true", help="keep the ledger (then --events 0 reuses it)")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        bench(backend, args)


if __name__ == "__main__":
    main()
