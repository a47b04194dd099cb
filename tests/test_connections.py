"""Client connections are bounded: idle ones, slow headers and slow bodies time out, the number
held at once is capped, and /healthz answers through it all. `spendgate serve` as a real
process, driven with raw sockets."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import Simulator
from tests.replicas import Replica, ReplicaSet, replica_env

# Generous: a socket the gateway should close is waited for this long before the test fails.
PATIENCE_S = 8.0


def _serve(tmp_path: Path, simulator: Simulator, **settings: str) -> tuple[ReplicaSet, Replica]:
    env = replica_env(tmp_path, simulator.url, **{f"SPENDGATE_{k.upper()}": v for k, v in settings.items()})
    replicas = ReplicaSet(tmp_path, env)
    return replicas, replicas.start()


def _connect(replica: Replica) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", replica.port), timeout=PATIENCE_S)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (a timeout fails the test)."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


def _status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
def replicas(tmp_path: Path, simulator: Simulator):
    replicas, _ = _serve(tmp_path, simulator, idle_timeout="1", header_timeout="1", body_timeout="1")
    yield replicas
    replicas.stop_all()


@pytest.fixture
def gateway(replicas: ReplicaSet) -> Replica:
    return replicas.replicas[0]


def test_an_idle_connection_is_closed(gateway: Replica) -> None:
    with _connect(gateway) as never_spoke:
        assert _read_until_closed(never_spoke) == b""
    with _connect(gateway) as after_a_response:
        after_a_response.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_until_closed(after_a_response).startswith(b"HTTP/1.1 200")


def test_headers_that_never_end_get_408_and_the_connection_closed(gateway: Replica) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        status, body = _status_and_json(_read_until_closed(sock))
    assert status == 408 and body["error"]["type"] == "request_timeout"


def test_headers_trickling_in_are_cut_at_the_deadline_whatever_the_activity(gateway: Replica) -> None:
    with _connect(gateway) as sock:
        answer = _trickle_headers(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


def _trickle_headers(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /v1/models HTTP/1.1\r\n")
    deadline = time.monotonic() + PATIENCE_S
    answer = b""
    while time.monotonic() < deadline:  # a header line every 0.2 s: never idle, never done
        try:
            sock.sendall(b"x-trickle: 1\r\n")
        except OSError:
            break
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            answer = _read_until_closed(sock)
            break
    return answer


def test_headers_over_64_kib_get_431(gateway: Replica) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nx-big: " + b"a" * 70_000)
        status, _ = _status_and_json(_read_until_closed(sock))
    assert status == 431


@pytest.mark.parametrize(("path", "shape"), [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
def test_a_body_that_never_ends_gets_408_in_the_providers_shape(
    replicas: ReplicaSet, gateway: Replica, path: str, shape: str
) -> None:
    key = json.loads(replicas.cli("keys", "create", "--name", "k", "--json"))["key"]
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-length: 100\r\n\r\n"
    with _connect(gateway) as sock:
        sock.sendall(head.encode() + b'{"model": ')
        status, body = _status_and_json(_read_until_closed(sock))
    assert status == 408
    error_type = body["error"]["type"]
    assert error_type == "request_timeout"
    assert (body.get("type") == "error") == (shape == "anthropic")


def test_at_the_cap_the_longest_idle_connection_goes_and_healthz_answers(tmp_path: Path, simulator: Simulator) -> None:
    replicas, replica = _serve(tmp_path, simulator, max_connections="20", idle_timeout="60")
    sockets = []
    try:
        for _ in range(30):
            sockets.append(_connect(replica))
            time.sleep(0.02)  # in order: the oldest is the longest idle
        with httpx.Client() as client:
            assert client.get(f"{replica.url}/healthz").json()["status"] == "ok"
        closed: set[int] = set()
        deadline = time.monotonic() + PATIENCE_S
        while len(closed) < 11 and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s in sockets if s.fileno() not in closed], [], [], 0.2)
            closed |= {s.fileno() for s in ready if s.recv(1) == b""}
        index_of = {s.fileno(): i for i, s in enumerate(sockets)}
        assert sorted(index_of[fd] for fd in closed) == list(range(11))  # 10 for the others, 1 for healthz
    finally:
        for sock in sockets:
            sock.close()
        replicas.stop_all()


def test_when_every_connection_is_busy_requests_get_503_and_healthz_still_answers(
    tmp_path: Path, simulator: Simulator
) -> None:
    replicas, replica = _serve(tmp_path, simulator, max_connections="3")
    key = json.loads(replicas.cli("keys", "create", "--name", "k", "--json"))["key"]
    started = threading.Barrier(4)

    def slow_stream() -> None:
        with openai.OpenAI(base_url=f"{replica.url}/v1", api_key=key, max_retries=0) as client:
            stream = client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "[[sim chunks=20 chunk_delay_ms=100]]"}],
                stream=True,
            )
            chunks = iter(stream)
            next(chunks)
            started.wait(PATIENCE_S)
            for _ in chunks:
                pass

    threads = [threading.Thread(target=slow_stream) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        started.wait(PATIENCE_S)  # three connections, each with a request in progress
        with (
            openai.OpenAI(base_url=f"{replica.url}/v1", api_key=key, max_retries=0) as client,
            pytest.raises(openai.InternalServerError) as refused,
        ):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert refused.value.status_code == 503 and refused.value.body["code"] == "overloaded"
        assert refused.value.response.headers["retry-after"] == "1"
        assert httpx.get(f"{replica.url}/healthz").json()["status"] == "ok"
    finally:
        for thread in threads:
            thread.join(PATIENCE_S * 2)
        replicas.stop_all()
    assert len(simulator.log.records) == 3  # the refused request reached no provider


def test_hundreds_of_idle_sockets_do_not_exhaust_the_open_files(tmp_path: Path, simulator: Simulator) -> None:
    """With 512 open files, the default cap of 4096 connections cannot hold: it is lowered to
    fit, and 600 idle sockets leave the gateway answering."""
    env = replica_env(tmp_path, simulator.url, SPENDGATE_IDLE_TIMEOUT="60")
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # 512 open files at most, soft and hard
            ["sh", "-c", f'ulimit -n 512 && exec "{sys.executable}" -m spendgate serve --port {number}'],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    sockets = []
    try:
        url = f"http://127.0.0.1:{number}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        for _ in range(600):
            sockets.append(socket.create_connection(("127.0.0.1", number), timeout=PATIENCE_S))
        assert httpx.get(f"{url}/healthz", timeout=PATIENCE_S).json()["status"] == "ok"
    finally:
        for sock in sockets:
            sock.close()
        process.terminate()
        process.wait(30)
    assert "max_connections lowered from 4096 to 128" in log_path.read_text()


def test_the_open_files_limit_is_raised_to_fit_the_cap() -> None:
    script = (
        "import resource\n"
        "from spendgate.connections import ConnectionLimits, fit_open_files\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (300, 5000))\n"
        "limits = fit_open_files(ConnectionLimits(max_connections=1000))\n"
        "print(limits.max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1000", "2256"]
