"""Where a request's time goes: py-spy on spendgate and on the pass-through under the same load.

Each target runs at 8 connections while py-spy samples it (non-blocking, all threads, on-CPU
samples only). CPU seconds per thread come from /proc over the same window, so a share of the
main thread's samples turns into microseconds of CPU per request: comparable across targets.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from compare import cpu, fixtures, load, probes, targets
from compare.measure import say
from compare.procs import pin

BOOTSTRAP = {"spendgate/cli/main.py", "spendgate/cli/__init__.py", "spendgate/server.py", "spendgate/__main__.py"}
RATE = 100  # samples per second: each pauses the process, so not many

SPENDGATE_SRC = Path(__file__).resolve().parents[2] / "src" / "spendgate"


def _own_files(target: str) -> tuple[set[str], str]:
    """File names py-spy may print for the target's own code (it prints bare names for modules of
    folders without __init__.py), and a prefix that marks them."""
    if target == "passthrough":
        return {"passthrough.py"}, "compare/passthrough.py"
    # The command line and the server start-up are on every stack's root, not the request's path.
    names = {p.name for p in SPENDGATE_SRC.rglob("*.py")} - {"__init__.py", "__main__.py", "cli.py", "server.py"}
    names -= {f"{m}.py" for m in sys.stdlib_module_names}
    return names, "spendgate/"


def _frame_key(frame: str) -> tuple[str, str]:
    """'Gateway.handle (spendgate/gateway/proxy.py:181)' -> ('Gateway.handle', 'spendgate/gateway/proxy.py')."""
    name, _, where = frame.rpartition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return name or frame, file


def read_samples(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


# The request's path, step by step: a step's samples are those whose stack holds these functions
# in this order (each matched by its qualified name); "↳" marks a part of the step above it.
SPENDGATE_STEPS = (
    ("the request's coroutine (Gateway.handle)", ("Gateway.handle",)),
    ("authenticate (key hash, directory lookup)", ("Gateway.authenticate",)),
    ("read the request body", ("read_body",)),
    ("parse the request JSON", ("_parse_json",)),
    ("attribute (owner, tags, policies)", ("attribute",)),
    ("event id", ("new_event_id",)),
    ("admit: reserve budgets, rate limit", ("Gateway._admit",)),
    ("↳ reservation estimate (tokens of the prompt)", ("Gateway._admit", "reservation_tokens")),
    ("↳ worst-case price", ("Gateway._admit", "PriceBook.price")),
    ("↳ Enforcer.admit", ("Gateway._admit", "Enforcer.admit")),
    ("↳ ↳ budget windows (window_for)", ("Enforcer.admit", "window_for")),
    ("spool the begin record", ("EventWriter.begin",)),
    ("forward and relay (Gateway._forward)", ("Gateway._forward",)),
    ("↳ upstream request (aiohttp)", ("Gateway._forward", "ClientSession._request")),
    ("↳ read the upstream body", ("Gateway._relay_body", "ClientResponse.read")),
    ("↳ usage parse", ("Gateway._relay_body", "openai_response_usage")),
    ("↳ price and build the event (settle)", ("Gateway._relay_body", "settle")),
    ("↳ spool the event (EventWriter.record)", ("Gateway._relay_body", "EventWriter.record")),
    ("↳ send the response to the client", ("Gateway._relay_body", "send_response")),
    ("settle budgets (Enforcer.settle)", ("Gateway._settle_budgets",)),
    ("↳ alerts told of the spend (budget_spent)", ("Gateway._settle_budgets", "budget_spent")),
    ("background: ledger writer task (event loop side)", ("EventWriter._run",)),
    ("background: alert evaluation", ("AlertCenter._run",)),
)
PASSTHROUGH_STEPS = (
    ("the request's coroutine (PassThrough._relay)", ("PassThrough._relay",)),
    ("↳ upstream request (aiohttp)", ("PassThrough._relay", "ClientSession._request")),
    ("↳ read the upstream body", ("PassThrough._relay", "ClientResponse.read")),
    ("↳ send the response to the client", ("PassThrough._relay", "RequestResponseCycle.send")),
)


def _matches(names: list[str], path: tuple[str, ...]) -> bool:
    position = 0
    for name in names:
        if name == path[position] or name.endswith("." + path[position]):
            position += 1
            if position == len(path):
                return True
    return False


def _thread_names(path: Path) -> dict[int, str]:
    """py-spy's root frames, 'thread (TID): NAME', as {TID: NAME}."""
    names: dict[int, str] = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            head = line.split(";", 1)[0]
            if head.startswith("thread (") and "): " in head:
                tid, _, name = head[len("thread (") :].partition("): ")
                if tid.isdigit():
                    names[int(tid)] = name
    return names


def analyse(
    stacks: Counter[tuple[str, ...]], own: tuple[set[str], str], main_us: float, steps: tuple = ()
) -> list[str]:
    """Markdown lines: the main thread's time by function, in % of its samples and in µs of CPU
    per request (``main_us``: the main thread's CPU per request over the window)."""
    names, prefix = own

    def is_own(file: str, name: str = "") -> bool:
        if name in ("<module>", "main") or file in BOOTSTRAP:
            return False
        return file.startswith(prefix) or ("/" not in file and file in names)

    main = Counter({s: n for s, n in stacks.items() if s and s[0].endswith("MainThread")})
    total = sum(main.values()) or 1
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    deepest_own: Counter[str] = Counter()
    by_step: Counter[str] = Counter()
    for stack, n in main.items():
        frames = [_frame_key(f) for f in stack[1:]]
        names = [name for name, _ in frames]
        for label, path in steps:
            if _matches(names, path):
                by_step[label] += n
        seen = set()
        for name, file in frames:
            label = f"{name} ({file})"
            if label not in seen:
                seen.add(label)
                inclusive[label] += n
        if frames:
            name, file = frames[-1]
            self_time[f"{name} ({file})"] += n
        owner = next((f"{n_} ({f_})" for n_, f_ in reversed(frames) if is_own(f_, n_)), None)
        deepest_own[owner or "(no own frame: server, event loop, HTTP client)"] += n

    def rows(counter: Counter[str], limit: int, only_own: bool = False) -> list[str]:
        out = ["| function | % of main-thread samples | µs CPU / request |", "| --- | ---: | ---: |"]
        picked = [
            (label, n)
            for label, n in counter.most_common()
            if not only_own or is_own(label.rsplit(" (", 1)[1][:-1], label.rsplit(" (", 1)[0])
        ]
        for label, n in picked[:limit]:
            out.append(f"| `{label}` | {100 * n / total:.1f} | {main_us * n / total:.1f} |")
        return out

    step_rows = ["| step | % of main-thread samples | µs CPU / request |", "| --- | ---: | ---: |"]
    step_rows += [
        f"| {label} | {100 * by_step[label] / total:.1f} | {main_us * by_step[label] / total:.1f} |"
        for label, _ in steps
    ]
    if steps:
        outside = total - by_step[steps[0][0]]
        step_rows.append(
            f"| outside the request's coroutine: event loop, protocol callbacks (HTTP parsing both ways), "
            f"background tasks | {100 * outside / total:.1f} | {main_us * outside / total:.1f} |"
        )
    return [
        f"Main thread: {total} samples.",
        "",
        "The request's path (inclusive: a step's share includes what it calls):",
        "",
        *step_rows,
        "",
        "Time by the deepest own frame on the stack (the own function, with whatever it called in libraries):",
        "",
        *rows(deepest_own, 20),
        "",
        "Own functions, inclusive (a function's share includes its callees):",
        "",
        *rows(inclusive, 30, only_own=True),
        "",
        "All functions by self time (the frame on top of the stack):",
        "",
        *rows(self_time, 25),
        "",
    ]


def _profile_one(
    target: targets.Running, kind: str, seconds: float, py_spy: str, workdir: Path
) -> tuple[list[str], float]:
    script = load.write_script(workdir / f"profile-{kind}.lua", fixtures.REQUEST_BODY, target.auth)
    # The target alone on one core, the load generator, the upstream and py-spy on the other: py-spy
    # counts a thread as active while it is runnable, so a target waiting for a core shared with
    # the processes it wakes (wrk, nginx) would show that wait as time in its socket writes.
    pinned = (os.cpu_count() or 1) >= 2
    target_cpus, other_cpus = ({1}, {0}) if pinned else (None, None)
    if pinned:
        pin(target.pid, target_cpus)
    load.wrk(target.port, script, threads=2, connections=8, seconds=3, cpus=other_cpus)  # warm-up
    # CPU per request without the profiler (py-spy pauses the process for every sample, which
    # slows it down): the samples give the shares, this window the microseconds.
    threads_before = cpu.threads(target.pid)
    plain = load.wrk(target.port, script, threads=2, connections=8, seconds=seconds / 2, cpus=other_cpus)
    threads_after = cpu.threads(target.pid)
    output = workdir / f"profile-{kind}.txt"
    spy = subprocess.Popen(
        [py_spy, "record", "--pid", str(target.pid), "--duration", str(round(seconds)), "--rate", str(RATE),
         "--format", "raw", "--threads", "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, other_cpus)) if other_cpus else None,
    )  # fmt: skip
    time.sleep(0.5)
    sampled = load.wrk(target.port, script, threads=2, connections=8, seconds=seconds - 1, cpus=other_cpus)
    spy.wait(60)
    requests = plain.requests
    lines = [
        f"{plain.rps:,.0f} req/s at 8 connections unprofiled ({requests:,} requests), {sampled.rps:,.0f} req/s "
        "while sampled.",
        "",
        "| thread | CPU µs / request (unprofiled) | context switches / request |",
        "| --- | ---: | ---: |",
    ]
    python_names = _thread_names(output)
    main_us = total_us = 0.0
    for tid, (name, cpu_after, switches_after) in sorted(threads_after.items()):
        _, cpu_before, switches_before = threads_before.get(tid, (name, 0.0, 0))
        us = (cpu_after - cpu_before) / requests * 1e6
        total_us += us
        name = python_names.get(tid, name)
        if tid == target.pid:
            main_us, name = us, f"{name} (main: event loop)"
        if us >= 0.05 or tid == target.pid:
            lines.append(f"| {name} [{tid}] | {us:.1f} | {(switches_after - switches_before) / requests:.2f} |")
    lines += [f"| all | {total_us:.1f} | |", ""]
    if output.exists():
        steps = PASSTHROUGH_STEPS if kind == "passthrough" else SPENDGATE_STEPS
        lines += analyse(read_samples(output), _own_files(kind), main_us, steps)
    else:
        lines.append("(py-spy wrote no profile)")
    return lines, total_us


def profile(args: argparse.Namespace, tools: dict[str, str], workdir: Path, py_spy: str) -> str:
    upstream = targets.static_upstream(tools["nginx"], workdir)
    if (os.cpu_count() or 1) >= 2:
        pin(upstream.pid, {0})
    sections: list[str] = [
        f"Profiles: py-spy {RATE} Hz (samples of runnable threads; the process paused for each, so stacks are "
        f"consistent), wrk -t2 -c8 for {args.profile_seconds:.0f} s per target after a 3 s warm-up and an unprofiled "
        f"{args.profile_seconds / 2:.0f} s window that gives the CPU per request; the target "
        "pinned alone on CPU 1, wrk, "
        "the nginx upstream and py-spy on CPU 0. µs CPU / request = share of the main thread's samples × the "
        "main thread's CPU per request in the unprofiled window (from /proc).",
        "",
    ]
    chosen = {name.strip() for name in args.only.split(",")}
    try:
        makers = [("passthrough", "Python pass-through", lambda: targets.passthrough(workdir, upstream.port))]
        makers.append(("sqlite", "spendgate (SQLite)", lambda: targets.spendgate_sqlite(workdir, upstream.port)))
        if "postgres" in chosen:
            makers.append(
                (
                    "postgres",
                    "spendgate (PostgreSQL + Redis)",
                    lambda: targets.spendgate_postgres(workdir, upstream.port, args.pg_url, args.redis_url),
                )
            )
        for kind, title, make in makers:
            say(f"profiling {title}")
            target = make()
            try:
                lines, _ = _profile_one(target, kind, args.profile_seconds, py_spy, workdir)
                if target.redis_url:
                    trips = probes.redis_trips(target.redis_url, target.port, target.auth, workdir)
                    lines += [trips.describe() + ".", ""]
            finally:
                target.stop()
                for step in target.cleanup:
                    step()
            sections += [f"### {title}", "", *lines]
    finally:
        upstream.stop()
    return "\n".join(sections)
