"""The results as markdown: one table of every target, the goal ratios, the ledger checks."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

from compare.measure import Result

STATIC, PASSTHROUGH, LITELLM = "static upstream", "Python pass-through", "LiteLLM"
SPENDGATE = "spendgate"


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    system = f"Linux {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({model}), {memory} RAM, {system}"


def command() -> str:
    """The command line this run was started with, as one would type it."""
    return "python bench/bench_compare.py " + shlex.join(sys.argv[1:])


def find(results: list[Result], prefix: str) -> Result | None:
    return next((r for r in results if r.name.startswith(prefix)), None)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def table(results: list[Result]) -> str:
    base = find(results, STATIC)
    assert base is not None
    rows = [
        "| target | p50 ms (1 conn) | p99 ms | **added p50 ms** | added p99 ms | req/s at 8 conn | req/s at 64 conn "
        "| CPU µs/req (8 conn) | stream first byte p50 ms | added first byte ms | peak RSS MiB | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        is_base = r is base
        rows.append(
            f"| {r.name} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} "
            f"| {'—' if is_base else _ms(r.p50_ms - base.p50_ms)} | {'—' if is_base else _ms(r.p99_ms - base.p99_ms)} "
            f"| {r.rps8:,.0f} | {r.rps64:,.0f} | {r.cpu_us8:,.0f} | {_ms(r.ttfb_p50_ms)} "
            f"| {'—' if is_base else _ms(r.ttfb_p50_ms - base.ttfb_p50_ms)} | {r.rss_kib / 1024:.1f} | {r.errors} |"
        )
    return "\n".join(rows)


def ratios(results: list[Result]) -> str:
    base = find(results, STATIC)
    floor = find(results, PASSTHROUGH)
    litellm = find(results, LITELLM)
    gateways = [r for r in results if r.name.startswith(SPENDGATE)]
    if base is None or not gateways or (litellm is None and floor is None):
        return ""
    header = "| ratio | goal | " + " | ".join(r.name for r in gateways) + " |"
    rows = [header, "| --- | --- |" + " ---: |" * len(gateways)]

    def row(label: str, goal: str, value, test) -> None:
        cells = []
        for r in gateways:
            v = value(r)
            cells.append("n/a" if v is None else f"{v:.2f} {'✅' if test(v) else '❌'}")
        rows.append(f"| {label} | {goal} | " + " | ".join(cells) + " |")

    if litellm is not None:
        row("throughput / LiteLLM's, 8 conn", "≥ 20", lambda r: r.rps8 / litellm.rps8, lambda v: v >= 20)
        row("throughput / LiteLLM's, 64 conn", "≥ 20", lambda r: r.rps64 / litellm.rps64, lambda v: v >= 20)
    if floor is not None:
        row("throughput / pass-through's, 8 conn", "≥ 0.6", lambda r: r.rps8 / floor.rps8, lambda v: v >= 0.6)
        row("throughput / pass-through's, 64 conn", "≥ 0.6", lambda r: r.rps64 / floor.rps64, lambda v: v >= 0.6)
        floor_added = floor.p50_ms - base.p50_ms
        row(
            "added p50 / pass-through's",
            "≤ 1.5",
            lambda r: (r.p50_ms - base.p50_ms) / floor_added if floor_added > 0 else None,
            lambda v: v <= 1.5,
        )
        row(
            "CPU per request / pass-through's",
            "(≤ 1.67 for 0.6×)",
            lambda r: r.cpu_us8 / floor.cpu_us8 if floor.cpu_us8 else None,
            lambda v: v <= 1 / 0.6,
        )
    return "\n".join(rows)


def document(results: list[Result], notes: list[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"Date: {now}  ",
        f"Machine: {machine()}  ",
        f"Command: `{command()}`",
        "",
        table(results),
        "",
        ratios(results),
        "",
    ]
    checks = [f"- {r.name}: {r.check.describe()}" for r in results if r.check is not None]
    extras = [f"- {r.name}: {note}" for r in results for note in r.notes]
    if checks:
        parts += ["Ledger check (after a clean SIGTERM):", *checks, ""]
    if extras or notes:
        parts += ["Notes:", *extras, *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)
