"""What one enormous stream line costs the gateway: memory, time, and /healthz meanwhile.

    python bench/bench_sse_line.py [--mb 300] [--gateway-src DIR]

Starts `spendgate simulator` and `spendgate serve` (SQLite, one worker each) as separate
processes, then streams one chat completion whose one text delta is ``--mb`` megabytes long:
a single SSE line without a newline until its end. While it flows, /healthz is polled; at the
end it prints the gateway's peak RSS (VmHWM), the time the stream took, the slowest /healthz
answer, and what the ledger recorded. ``--gateway-src`` runs the gateway from another source
tree (e.g. an older checkout's ``src``) for a before/after comparison; the simulator always
runs from this one (it has the ``long_delta`` directive).

Not a test: figures vary with the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spendgate(args: list[str], env: dict[str, str], src: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "spendgate", *args],
        env={**env, "PYTHONPATH": str(src)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="size of the one long line, in megabytes")
    parser.add_argument("--gateway-src", type=Path, default=SRC, help="source tree to run the gateway from")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-sse-line-"))
    db = workdir / "ledger.db"
    sim_port, gw_port = free_port(), free_port()
    env = {
        **os.environ,
        "SPENDGATE_DB": f"sqlite:///{db}",
        "SPENDGATE_OPENAI_BASE_URL": f"http://127.0.0.1:{sim_port}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "SPENDGATE_UPSTREAM_TIMEOUT": "600",
    }
    simulator = spendgate(["simulator", "--port", str(sim_port)], env, SRC)
    key = json.loads(
        subprocess.run(
            [sys.executable, "-m", "spendgate", "keys", "create", "--name", "bench", "--json"],
            env={**env, "PYTHONPATH": str(options.gateway_src)},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )["key"]
    gateway = spendgate(["serve", "--port", str(gw_port), "--log-level", "warning"], env, options.gateway_src)
    base = f"http://127.0.0.1:{gw_port}"
    try:
        wait_until_up(f"http://127.0.0.1:{sim_port}/v1/models")
        wait_until_up(f"{base}/healthz")
        before = peak_rss_mib(gateway.pid)
        slowest = [0.0]
        done = threading.Event()

        def poll_health() -> None:
            with httpx.Client(timeout=60) as client:
                while not done.is_set():
                    started = time.perf_counter()
                    client.get(f"{base}/healthz")
                    slowest[0] = max(slowest[0], time.perf_counter() - started)
                    time.sleep(0.05)

        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        body = {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": f"[[sim input=20 output=7 long_delta={options.mb * 1_000_000}]]"}],
        }
        received = 0
        started = time.perf_counter()
        with httpx.stream(
            "POST", f"{base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=600
        ) as response:
            for chunk in response.iter_raw():
                received += len(chunk)
        elapsed = time.perf_counter() - started
        done.set()
        poller.join(60)
        peak = peak_rss_mib(gateway.pid)
        gateway.terminate()
        gateway.wait(60)
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT status, estimated, input_tokens, output_tokens FROM usage_events").fetchone()
        print(f"gateway from {options.gateway_src}")
        print(f"one line of {options.mb} MB: {received / 1e6:.1f} MB relayed in {elapsed:.2f} s")
        print(f"gateway peak RSS {peak:.0f} MiB (idle before: {before:.0f} MiB)")
        print(f"slowest /healthz while it streamed: {slowest[0] * 1000:.0f} ms")
        print(f"ledger: status={row[0]} estimated={bool(row[1])} input={row[2]} output={row[3]}")
    finally:
        for process in (gateway, simulator):
            if process.poll() is None:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
