"""`spendgate serve` as a user runs it: a real process, stopped by a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import openai
import pytest

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


def test_workers_need_shared_counters(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spendgate", "serve", "--workers", "2", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
        env={k: v for k, v in os.environ.items() if k != "SPENDGATE_REDIS_URL"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--workers > 1 needs SPENDGATE_REDIS_URL" in result.stderr
    assert "listening" not in result.stderr + result.stdout  # it never did


def _serve_until(port: int, env: dict[str, str], *args: str, ready: str | None) -> tuple[int | None, str]:
    """Run `spendgate serve`, until ``ready`` is logged (then SIGTERM) or it exits by itself."""
    lines = []
    with subprocess.Popen(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            for line in server.stdout:
                lines.append(line)
                if ready is not None and ready in line:
                    server.send_signal(signal.SIGTERM)
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(10)
    return server.returncode, "".join(lines)


def test_serve_says_it_listens_once_bound_and_never_shows_the_database_password(tmp_path: Path, postgres_db) -> None:
    url = postgres_db().replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@", 1)
    env = {**os.environ, "SPENDGATE_SPOOL_DIR": str(tmp_path / "spool")}
    _, output = _serve_until(_free_port(), env, "--db", url, ready="spendgate listening")
    assert "spendgate listening on http://127.0.0.1:" in output, output
    assert "(ledger postgresql://postgres:***@127.0.0.1:5432/" in output
    assert "s3cret-pw" not in output
    assert output.index("Uvicorn running on") < output.index("spendgate listening")  # bound first


def test_serve_on_a_taken_port_fails_without_claiming_to_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "SPENDGATE_DB": f"sqlite:///{tmp_path / 'x.db'}"}
        status, output = _serve_until(taken.getsockname()[1], env, ready=None)
    assert status not in (0, None)
    assert "address already in use" in output.lower()
    assert "listening" not in output


def test_several_workers_share_one_budget_and_lose_nothing(
    tmp_path: Path, simulator: Simulator, redis_url: str
) -> None:
    import redis

    shared = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(shared).flushdb()
    port = _free_port()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = {
        **os.environ,
        "SPENDGATE_OPENAI_BASE_URL": f"{simulator.url}/v1",
        "OPENAI_API_KEY": "sk-upstream",
        "SPENDGATE_REDIS_URL": shared,
        "SPENDGATE_DB": db,
        "SPENDGATE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    _spendgate("teams", "create", "ops", env=env)
    _spendgate("projects", "create", "bot", "--team", "ops", env=env)
    key = json.loads(_spendgate("keys", "create", "--name", "bot", "--project", "bot", "--json", env=env))["key"]
    _spendgate("budgets", "create", "--scope", "project:bot", "--limit", "0.0015", "--name", "bot", env=env)
    server = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    statuses = []
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(30):  # new connections each time, so both workers take requests
            fresh = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
            try:
                fresh.chat.completions.create(
                    model="gpt-4o-mini",
                    max_tokens=100,
                    messages=[{"role": "user", "content": "[[sim output=100]] " + "spend " * 300}],
                )
                statuses.append(200)
            except openai.APIStatusError as exc:
                statuses.append(exc.status_code)
            finally:
                fresh.close()
        client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert set(statuses) == {200, 402}, output
    report = json.loads(_spendgate("report", "--by", "project", "--format", "json", env=env))
    assert report["total_requests"] == statuses.count(200)  # every answered request, once
    assert Decimal(report["total_cost_usd"]) <= Decimal("0.0015")


GOOD_ENTRY = '[[price]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput_mtok = "2"\noutput_mtok = "8"\n'


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("prices.toml", "[[price]\n", "not valid TOML: "),
        ("prices.json", '{"price": [', "not valid JSON: "),
        ("prices.toml", GOOD_ENTRY + 'inptu_mtok = "1"\n', "price #1 (openai/gpt-4o): unknown field(s) inptu_mtok"),
        ("prices.toml", GOOD_ENTRY.replace('"2"', "2.5"), "price #1 (openai/gpt-4o): input_mtok = 2.5 is a float"),
        (
            "prices.toml",
            GOOD_ENTRY + GOOD_ENTRY + 'effective_from = "2026-02-30"\n',
            "price #2 (openai/gpt-4o): effective_from = '2026-02-30' is not a date",
        ),
        (
            "prices.toml",
            GOOD_ENTRY + "[[price.tier]]\nabove_input_tokens = -1\ninput_mtok = '4'\n",
            "price #1 (openai/gpt-4o): tier #1: above_input_tokens must be positive",
        ),
        ("absent.toml", None, "cannot read it"),
    ],
)
def test_an_invalid_overrides_file_stops_serve_with_one_clear_line(
    tmp_path: Path, name: str, text: str | None, problem: str
) -> None:
    prices = tmp_path / name
    if text is not None:
        prices.write_text(text)
    config = tmp_path / "spendgate.toml"
    config.write_text(f'db = "sqlite:///{tmp_path / "ledger.db"}"\nprices = "{prices}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(_free_port()), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: invalid price overrides: {prices}: ")
    assert problem in line


def test_an_invalid_overrides_file_from_the_environment_stops_every_worker_layout(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(GOOD_ENTRY.replace('"8"', "8.0"))
    env = {**os.environ, "SPENDGATE_PRICES": str(prices), "SPENDGATE_DB": f"sqlite:///{tmp_path / 'ledger.db'}"}
    for workers in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "spendgate", "serve", "--port", str(_free_port()), "--workers", workers],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert done.stderr.strip() == (
            f"Error: invalid price overrides: {prices}: price #1 (openai/gpt-4o): output_mtok = 8.0 is a float and"
            ' money must be exact: quote it, output_mtok = "8.0"'
        )
