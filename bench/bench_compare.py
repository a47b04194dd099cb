"""Side by side, in one run: spendgate against the floor of a hop and against LiteLLM (issue 5).

    python bench/bench_compare.py            # full: ~10 s per measurement, about 7 minutes
    python bench/bench_compare.py --quick    # a few seconds per measurement, to try it
    python bench/bench_compare.py --soak     # memory over 1,000,000 requests through spendgate (SQLite)
    python bench/bench_compare.py --profile  # py-spy of spendgate and of the pass-through at 8 connections
    python bench/bench_compare.py --scaling  # spendgate --workers 1 against --workers 2

Run from the repository's virtual environment (`pip install -e '.[dev]'`). It installs what it
lacks, once: nginx and wrk from Debian's packages (apt-get, as root), py-spy (pip, for
--profile) and LiteLLM's proxy 1.80.0 in a virtual environment of its own under
~/.cache/spendgate-bench (or --cache-dir).

Targets, each one process (one worker) on loopback, all in front of the same static upstream:
- static upstream: nginx answering a fixed chat completion with usage (or a fixed SSE stream),
  measured directly: the baseline every "added" figure is taken against;
- nginx proxy hop (keep-alive upstream pool): the floor of any hop;
- Python pass-through (bench/compare/passthrough.py): uvicorn + uvloop + httptools, a pooled
  aiohttp client, one JSON parse: the floor of a Python gateway;
- spendgate with SQLite, and with PostgreSQL + Redis: a key of a project, two budgets and a rate
  limit, so every request is authenticated, attributed, priced, reserved, settled and spooled;
- LiteLLM's proxy 1.80.0: no database, no callbacks, one worker.

Load is wrk (-t1 -c1 --latency for latency; -t2 -c8 and -t2 -c64 for throughput) with a Lua
script that also counts the requests it sends; the stream's first byte is timed by a Python
client on one keep-alive connection. After each spendgate target stops (SIGTERM), its ledger
is checked to hold one event per request it answered. Not a test: figures vary with the
machine; the 2 cores are shared by the load generator, the upstream and the target.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import prepare, report, targets
from compare.measure import Durations, Result, measure, say
from compare.procs import ForeignLoad, busiest_processes, machine_busy

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
ALL = ("nginx", "passthrough", "sqlite", "postgres", "litellm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few seconds per measurement")
    mode.add_argument("--soak", action="store_true", help="RSS of spendgate (SQLite) over 1,000,000 requests")
    mode.add_argument("--profile", action="store_true", help="py-spy profiles at 8 connections")
    mode.add_argument("--scaling", action="store_true", help="spendgate --workers 1 against --workers 2")
    parser.add_argument("--only", default=",".join(ALL), help=f"targets to run besides the upstream: {','.join(ALL)}")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL server (a database is created and dropped)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="Redis database for counters (EMPTIED)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "spendgate-bench")
    parser.add_argument("--output", type=Path, help="also write the markdown results to this file")
    parser.add_argument("--soak-requests", type=int, default=1_000_000)
    parser.add_argument("--profile-seconds", type=float, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs, databases)")
    return parser.parse_args(argv)


def run_comparison(args: argparse.Namespace, tools: dict[str, str], workdir: Path) -> str:
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = chosen - set(ALL)
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}; pick from {','.join(ALL)}")
    notes: list[str] = []
    foreign = ForeignLoad()
    busy = machine_busy()
    if busy > 0.15:
        # Every figure here shares 2 cores: another busy process skews them all.
        others = "; ".join(busiest_processes())
        notes.append(f"the machine was {busy:.0%} busy before the run started (busiest: {others})")
        say(f"warning: the machine is {busy:.0%} busy before the run: {others}")
    litellm_program = None
    if "litellm" in chosen:
        litellm_program = prepare.litellm(args.cache_dir)
        if litellm_program is None:
            notes.append("LiteLLM could not be installed here (see the log above); it is left out")
    durations = Durations.quick() if args.quick else Durations.full()
    nginx = tools["nginx"]
    upstream = targets.static_upstream(nginx, workdir)
    results: list[Result] = []
    try:
        up = upstream.port
        makers = {
            "nginx": lambda: targets.nginx_proxy(nginx, workdir, up),
            "passthrough": lambda: targets.passthrough(workdir, up),
            "sqlite": lambda: targets.spendgate_sqlite(workdir, up),
            "postgres": lambda: targets.spendgate_postgres(workdir, up, args.pg_url, args.redis_url),
            "litellm": lambda: targets.litellm(litellm_program, workdir, up) if litellm_program else None,
        }
        # The upstream alone first: what every "added" figure subtracts. Measured in the same
        # way as the others, and again at the end to show how much the machine drifted.
        results.append(_measure_upstream(upstream, durations, workdir))
        for name in ALL:
            if name not in chosen:
                continue
            try:
                target = makers[name]()
            except Exception as exc:  # a target that cannot start is reported, the others still run
                notes.append(f"{name} could not be started: {exc}")
                say(f"{name} could not be started: {exc}")
                continue
            if target is None:
                continue
            try:
                results.append(measure(target, durations, workdir))
            except Exception as exc:
                notes.append(f"{target.name} failed during the measurement: {exc}")
                say(f"{target.name} failed: {exc}\n{target.services[0].log_tail()}")
            finally:  # stopping twice is harmless; a target is never left running
                target.stop()
                for step in target.cleanup:
                    step()
        again = _measure_upstream(upstream, durations, workdir)
        notes.append(
            f"static upstream re-measured at the end: p50 {again.p50_ms:.3f} ms (was {results[0].p50_ms:.3f}), "
            f"{again.rps8:,.0f} req/s at 8 connections (was {results[0].rps8:,.0f})"
        )
    finally:
        upstream.stop()
    notes.append(foreign.describe())
    return report.document(results, notes)


def _measure_upstream(upstream: targets.Running, durations: Durations, workdir: Path) -> Result:
    return measure(upstream, durations, workdir, keep_running=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tools = prepare.debian_tools()
    workdir = Path(tempfile.mkdtemp(prefix="spendgate-compare-"))
    say(f"work directory {workdir}")
    if args.soak:
        from compare.soak import soak

        text = soak(args, tools, workdir)
    elif args.scaling:
        from compare.scaling import scaling

        text = scaling(args, tools, workdir)
    elif args.profile:
        from compare.profile import profile

        text = profile(args, tools, workdir, prepare.py_spy())
    else:
        text = run_comparison(args, tools, workdir)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    if args.keep:
        say(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
