"""Load: wrk (with a Lua script that counts what it sends) and a first-byte timer for streams."""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LUA = """
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(auth)s
local threads = {}
local prepared = nil
sent = 0
limit = limit or 0

function setup(thread)
  table.insert(threads, thread)
  if %(limit)d > 0 then thread:set("limit", %(limit)d) end
end

function init(args)
  prepared = wrk.format()
end

-- wrk only ends at its -d deadline or on SIGINT: a thread that has sent its share (the soak's
-- fixed request counts) interrupts the whole run.
local function interrupt_wrk()
  local stat = io.open("/proc/self/stat"):read("*l")
  -- In the background: system() ignores SIGINT in wrk while its child runs.
  os.execute("(sleep 0.05; kill -INT " .. stat:match("^(%%d+)") .. ") &")
end

-- Defining request() makes wrk ask it for every request it writes: it counts them, so the
-- ledger can be checked against what was really sent (in flight when wrk stopped included).
function request()
  sent = sent + 1
  if sent == limit then interrupt_wrk() end
  return prepared
end

function done(summary, latency, requests)
  local total_sent = 0
  for _, t in ipairs(threads) do total_sent = total_sent + t:get("sent") end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"timeout":%%d,"sent":%%d,"p50":%%.1f,"p90":%%.1f,"p99":%%.1f,"mean":%%.1f,"max":%%.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout, total_sent,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    non2xx: int
    socket_errors: int
    sent: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx


def write_script(path: Path, body: str, auth: str | None, limit_per_thread: int = 0) -> Path:
    header = f'wrk.headers["Authorization"] = "Bearer {auth}"' if auth else ""
    path.write_text(LUA % {"body": body, "auth": header, "limit": limit_per_thread})
    return path


def wrk(
    port: int,
    script: Path,
    *,
    threads: int,
    connections: int,
    seconds: float,
    latency: bool = False,
    cpus: set[int] | None = None,
) -> WrkResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        *(["--latency"] if latency else []),
        f"http://127.0.0.1:{port}/v1/chat/completions",
    ]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    out = subprocess.run(argv, check=True, capture_output=True, text=True, preexec_fn=pin).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    data = json.loads(line[6:])
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        non2xx=data["non2xx"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        sent=data["sent"],
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
    )


@dataclass
class FirstByte:
    count: int
    ok: int
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    total_p50_ms: float


def first_byte(port: int, body: str, auth: str | None, count: int, *, accept_stream: bool = True) -> FirstByte:
    """Sequential streaming requests on one keep-alive connection: the time to the first byte of
    the body (the first SSE event) and to the end of the stream, as a client sees them."""
    headers = {"content-type": "application/json"}
    if accept_stream:
        headers["accept"] = "text/event-stream"
    if auth:
        headers["authorization"] = f"Bearer {auth}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    ttfb, total, ok = [], [], 0
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = connection.getresponse()
        first = response.read(1)
        ttfb.append(time.perf_counter() - start)
        rest = response.read()
        total.append(time.perf_counter() - start)
        if response.status == 200 and b"[DONE]" in first + rest:
            ok += 1
    connection.close()
    return FirstByte(
        count=count,
        ok=ok,
        ttfb_p50_ms=statistics.median(ttfb) * 1000,
        ttfb_p99_ms=statistics.quantiles(ttfb, n=100, method="inclusive")[98] * 1000,
        total_p50_ms=statistics.median(total) * 1000,
    )


def first_byte_plain(port: int, body: str, auth: str | None, count: int) -> list[float]:
    """Sequential non-streaming requests on one connection (latencies in seconds)."""
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {auth}"} if auth else {})}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        samples.append(time.perf_counter() - start)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from port {port}")
    connection.close()
    return samples
