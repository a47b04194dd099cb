"""Memory over a long run: spendgate (SQLite, everything on) driven through 1,000,000 requests.

wrk (-t2 -c8) sends them in legs of 100,000 (each wrk thread stops itself at its share); after
each leg the gateway's resident set (VmRSS) and peak (VmHWM) are read. The goal of issue 5:
the resident set after 1,000,000 requests within 10% of the one after 100,000.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from compare import cpu, fixtures, load, report, targets
from compare.measure import LedgerCheck, say
from compare.procs import memory_kib

LEG = 100_000
THREADS, CONNECTIONS = 2, 8


def soak(args: argparse.Namespace, tools: dict[str, str], workdir: Path) -> str:
    total_wanted = args.soak_requests
    upstream = targets.static_upstream(tools["nginx"], workdir)
    rows = []
    runs: list[load.WrkResult] = []
    try:
        target = targets.spendgate_sqlite(workdir, upstream.port)
        target.smoke()
        started = time.monotonic()
        try:
            sent_total = 0
            checkpoint = min(LEG, total_wanted)
            while sent_total < total_wanted:
                leg_start, cpu_start, leg_requests = time.monotonic(), cpu.cpu_seconds(target.pid), 0
                while sent_total < checkpoint:
                    share = math.ceil((checkpoint - sent_total) / THREADS)
                    script = load.write_script(workdir / "soak.lua", fixtures.REQUEST_BODY, target.auth, share)
                    run = load.wrk(target.port, script, threads=THREADS, connections=CONNECTIONS, seconds=3600)
                    runs.append(run)
                    sent_total += run.requests
                    leg_requests += run.requests
                elapsed = time.monotonic() - leg_start
                rss, peak = memory_kib(target.pid, "VmRSS"), memory_kib(target.pid, "VmHWM")
                anon, files = memory_kib(target.pid, "RssAnon"), memory_kib(target.pid, "RssFile")
                cpu_us = (cpu.cpu_seconds(target.pid) - cpu_start) / max(1, leg_requests) * 1e6
                rows.append((sent_total, rss, peak, anon, files, leg_requests / elapsed, cpu_us))
                say(f"soak: {sent_total:,} requests, RSS {rss / 1024:.1f} MiB (peak {peak / 1024:.1f} MiB)")
                checkpoint = min(checkpoint + LEG, total_wanted)
            duration = time.monotonic() - started
            check = LedgerCheck(
                answered_2xx=1 + sum(run.ok for run in runs),
                in_flight=sum(run.sent - run.requests for run in runs),
                non2xx=sum(run.non2xx for run in runs),
            )
        finally:
            target.stop()
        check.ledger = target.count_ledger() if target.count_ledger else None
    finally:
        upstream.stop()
    lines = [
        f"Machine: {report.machine()}  ",
        f"Command: `{report.command()}`",
        "",
        f"spendgate (SQLite, everything on), wrk -t{THREADS} -c{CONNECTIONS}, {rows[-1][0]:,} requests in "
        f"{duration / 60:.1f} min.",
        "",
        "| requests | RSS MiB | of it anonymous | of it file-backed | peak RSS MiB | req/s over the leg "
        "| CPU µs / request over the leg |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {n:,} | {rss / 1024:.1f} | {anon / 1024:.1f} | {files / 1024:.1f} | {peak / 1024:.1f} | {rps:,.0f} "
            f"| {cpu_us:.0f} |"
            for n, rss, peak, anon, files, rps, cpu_us in rows
        ),
        "",
    ]
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        growth = (last[1] - first[1]) / first[1]
        verdict = "✅ within 10%" if abs(growth) <= 0.10 else "❌ more than 10%"
        lines.append(
            f"RSS after {last[0]:,} requests vs after {first[0]:,}: {last[1] / 1024:.1f} MiB vs "
            f"{first[1] / 1024:.1f} MiB, {growth:+.1%} ({verdict})."
        )
    lines.append(f"Ledger after a clean SIGTERM: {check.describe()}")
    return "\n".join(lines)
