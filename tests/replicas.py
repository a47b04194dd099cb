"""Gateway replicas as real processes (`spendgate serve`), for what needs several of them
or a process that can be killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from spendgate.secretbox import new_key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Replica:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing flushed, as a crash or an OOM kill."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@dataclass
class ReplicaSet:
    workdir: Path
    env: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)

    def start(self) -> Replica:
        port = free_port()
        log_path = self.workdir / f"replica-{port}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "--log-level", "warning"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        replica = Replica(port, process, log_path)
        self.replicas.append(replica)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{replica.url}/healthz", timeout=1).status_code == 200:
                    return replica
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"replica on {port} did not start:\n{replica.output()}")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "spendgate", *args], env=self.env, check=True, capture_output=True, text=True
        ).stdout

    def stop_all(self) -> None:
        for replica in self.replicas:
            replica.stop()


def replica_env(workdir: Path, simulator_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SPENDGATE_DB": f"sqlite:///{workdir / 'ledger.db'}",
        "SPENDGATE_OPENAI_BASE_URL": f"{simulator_url}/v1",
        "SPENDGATE_ANTHROPIC_BASE_URL": simulator_url,
        "OPENAI_API_KEY": "sk-upstream",
        "ANTHROPIC_API_KEY": "sk-ant-upstream",
        "SPENDGATE_FLUSH_INTERVAL": "0.05",
        "SPENDGATE_REFRESH_INTERVAL": "0.2",
        "SPENDGATE_SPOOL_DIR": str(workdir / "spool"),
        # Webhook secrets are stored encrypted: every replica and CLI call shares one key.
        "SPENDGATE_ENCRYPTION_KEY": new_key(),
        **extra,
    }
