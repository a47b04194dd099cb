"""`spendgate serve` as a user runs it: a real process, stopped by a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai

from tests.conftest import Simulator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spendgate(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", "spendgate", *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def test_sigterm_flushes_every_buffered_event(tmp_path: Path, simulator: Simulator) -> None:
    port = _free_port()
    config = tmp_path / "spendgate.toml"
    # A long flush interval: without the shutdown flush, these events would still be in memory.
    config.write_text(f'db = "sqlite:///{tmp_path / "ledger.db"}"\nflush_interval = 3600\n')
    env = {
        **os.environ,
        "SPENDGATE_OPENAI_BASE_URL": f"{simulator.url}/v1",
        "OPENAI_API_KEY": "sk-upstream",
    }
    _spendgate("teams", "create", "ops", "--config", str(config), env=env)
    _spendgate("projects", "create", "bot", "--team", "ops", "--config", str(config), env=env)
    key = json.loads(
        _spendgate("keys", "create", "--name", "bot", "--project", "bot", "--json", "--config", str(config), env=env)
    )["key"]

    server = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for i in range(25):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"[[sim input={i + 1} output=3]]"}]
            )
        client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "25 events written" in output
    report = json.loads(_spendgate("report", "--by", "project", "--format", "json", "--config", str(config), env=env))
    assert report["rows"][0]["project"] == "bot"
    assert report["total_requests"] == 25
    assert report["rows"][0]["input_tokens"] == sum(range(1, 26))
    assert "sk-upstream" not in output and key not in output
