"""`--scaling`: spendgate with --workers 1 and --workers 2 on the same machine (issue 5).

Both on SQLite + Redis (``--workers`` needs shared counters), in front of the static upstream,
measured as every other target. Besides throughput, it reports how many cores each run's
gateway processes actually got: on this 2-core machine wrk and the upstream share the cores
with the gateway, so two workers can never have two whole cores, and throughput per core used
tells whether a second worker scales or only contends.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compare import report, targets
from compare.measure import Durations, Result, measure, say
from compare.procs import ForeignLoad


def _cores(result: Result) -> float:
    # CPU seconds per request × requests per second = cores busy during the 8-connection run.
    return result.cpu_us8 * result.rps8 / 1e6


def scaling(args: argparse.Namespace, tools: dict[str, str], workdir: Path) -> str:
    durations = Durations.quick() if args.quick else Durations.full()
    foreign = ForeignLoad()
    upstream = targets.static_upstream(tools["nginx"], workdir)
    results: list[Result] = []
    try:
        results.append(measure(upstream, durations, workdir, keep_running=True))
        for workers in (1, 2):
            target = targets.spendgate_workers(workdir, upstream.port, args.redis_url, workers)
            try:
                results.append(measure(target, durations, workdir))
            finally:
                target.stop()
                for step in target.cleanup:
                    step()
    finally:
        upstream.stop()
    one, two = results[1], results[2]
    lines = [
        "| workers | req/s, 8 conn | req/s, 64 conn | cores used by the gateway (8 conn) | req/s per core used |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for count, result in ((1, one), (2, two)):
        cores = _cores(result)
        lines.append(
            f"| {count} | {result.rps8:,.0f} | {result.rps64:,.0f} | {cores:.2f} | {result.rps8 / cores:,.0f} |"
        )
    summary = (
        f"2 workers / 1 worker: {two.rps8 / one.rps8:.2f}× at 8 connections, {two.rps64 / one.rps64:.2f}× at 64;"
        f" the gateway got {_cores(two) / _cores(one):.2f}× the cores"
        f" (the rest of the 2 cores went to wrk and the upstream)."
    )
    say(summary)
    text = report.document(results, [summary, foreign.describe()])
    return "\n".join([text, "", *lines])
