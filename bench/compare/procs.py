"""Processes the benchmark starts: ports, readiness, clean stops, and their memory."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One started process (and whatever it forks), its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], *, log_dir: Path, env: dict | None = None, cwd: Path | None = None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_listening(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} is not listening on {port} after {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (a clean shutdown: spendgate drains its ledger), SIGKILL only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        return self.process.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def memory_kib(pid: int, field: str = "VmHWM") -> int:
    """``field`` (VmHWM: peak resident set; VmRSS: current) summed over ``pid`` and its descendants."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` and its descendants onto ``cpus`` (threads made later inherit it)."""
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), cpus)


def machine_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat), before the benchmark loads them."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def busiest_processes(limit: int = 3) -> list[str]:
    out = subprocess.run(
        ["ps", "-eo", "pcpu,etime,args", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True
    ).stdout
    return [" ".join(line.split())[:120] for line in out.splitlines()[:limit]]


class ForeignLoad:
    """CPU the machine spent on anything but this benchmark and what it started, over a span:
    /proc/stat's busy time less this process's and its reaped children's (rusage). Every figure
    of a run shares the same cores, so it says how far the run can be trusted."""

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / tick
        steal = fields[7] / tick if len(fields) > 7 else 0.0
        ours = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            ours += usage.ru_utime + usage.ru_stime
        return time.monotonic(), busy, steal, ours, _servers_cpu()

    def describe(self) -> str:
        """Call once every process the benchmark started has been stopped (and so reaped)."""
        t0, busy0, steal0, ours0, servers0 = self._start
        t1, busy1, steal1, ours1, servers1 = self._sample()
        wall = max(t1 - t0, 1e-9)
        servers = servers1 - servers0
        foreign = max(0.0, (busy1 - busy0) - (ours1 - ours0) - servers)
        cores = os.cpu_count() or 1
        return (
            f"CPU spent by other processes on the machine during the run: {foreign:.0f} core-seconds over "
            f"{wall:.0f} s ({foreign / wall / cores:.0%} of the machine; ~0% means a quiet machine), besides "
            f"{servers:.0f} s by the Redis and PostgreSQL servers; hypervisor steal {steal1 - steal0:.0f} s"
        )


def _servers_cpu() -> float:
    """CPU seconds used so far by the Redis and PostgreSQL servers (theirs, whoever asked)."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = Path(f"/proc/{entry}/stat").read_text()
                name = text[text.index("(") + 1 : text.rindex(")")]
                if name.startswith(("redis-server", "postgres")):
                    fields = text[text.rindex(")") + 2 :].split()
                    total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")
