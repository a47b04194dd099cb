"""CPU time of processes and their threads, from /proc (clock ticks turned into seconds)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from compare.procs import process_tree

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: Path) -> tuple[str, list[str]]:
    text = path.read_text()
    name = text[text.index("(") + 1 : text.rindex(")")]
    return name, text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants, all threads."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, ValueError):
            _, fields = _stat_fields(Path(f"/proc/{member}/stat"))
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def threads(pid: int) -> dict[int, tuple[str, float, int]]:
    """Per thread id: its name, CPU seconds and context switches (voluntary and not)."""
    found: dict[int, tuple[str, float, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            name, fields = _stat_fields(task / "stat")
            switches = 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
            found[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / TICK, switches)
    return found
