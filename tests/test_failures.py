"""What goes wrong upstream or at the client is still in the ledger, exactly once."""

from __future__ import annotations

import socket
import time
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway


@pytest.fixture
def key(gateway: Gateway) -> str:
    gateway.team("support")
    gateway.project("assistant", team="support")
    return gateway.key("assistant-key", project="assistant")


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_openai_stream_broken_by_the_provider_is_incomplete_and_estimated(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    received = []
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in client.chat.completions.create(
            model="gpt-4o",
            messages=_user("[[sim input=500 output=50 chunks=10 break_after=3 text=hello]]"),
            stream=True,
        ):
            received.append(chunk)
    assert received, "the part streamed before the break should reach the client"
    [event] = gateway.events()
    assert (event["status"], event["estimated"]) == ("incomplete", True)
    assert event["input_tokens"] > 0 and event["output_tokens"] > 0
    assert Decimal(event["cost_usd"]) > 0


def test_anthropic_stream_broken_keeps_the_exact_input_side(gateway: Gateway, key: str) -> None:
    client = gateway.anthropic(key)
    with (
        pytest.raises((anthropic.APIError, httpx.HTTPError)),
        client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=_user("[[sim input=321 cached=1000 output=80 chunks=8 break_after=2]]"),
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    [event] = gateway.events()
    assert (event["status"], event["estimated"]) == ("incomplete", True)
    # message_start told the input side exactly; only the output is an estimate.
    assert (event["input_tokens"], event["cached_input_tokens"]) == (1321, 1000)
    assert event["output_tokens"] >= 1


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_client_disconnect_mid_stream_is_incomplete(gateway: Gateway, key: str, family: str) -> None:
    directive = "[[sim input=200 output=400 chunks=40 chunk_delay_ms=50]]"
    if family == "openai":
        stream = gateway.openai(key).chat.completions.create(model="gpt-4o", messages=_user(directive), stream=True)
    else:
        stream = gateway.anthropic(key).messages.create(
            model="claude-haiku-4-5", max_tokens=400, messages=_user(directive), stream=True
        )
    iterator = iter(stream)
    for _ in range(3):
        next(iterator)
    stream.close()  # the client walks away mid-generation
    deadline = time.monotonic() + 5
    events = []
    while time.monotonic() < deadline and not events:
        events = gateway.events()
        time.sleep(0.05)
    [event] = events
    assert (event["status"], event["estimated"], event["stream"]) == ("incomplete", True, True)
    assert event["cost_usd"] is not None


@pytest.mark.parametrize("status", [400, 429, 500])
def test_upstream_errors_pass_through_unchanged_and_are_recorded(gateway: Gateway, key: str, status: int) -> None:
    direct = httpx.post(
        f"{gateway.sim.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": _user(f"[[sim status={status}]]")},
        headers={"authorization": "Bearer sk-direct"},
    )
    via_gateway = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": _user(f"[[sim status={status}]]")},
        headers={"authorization": f"Bearer {key}"},
    )
    assert via_gateway.status_code == direct.status_code == status
    assert via_gateway.json() == direct.json()
    if status == 429:
        assert via_gateway.headers.get("retry-after") == direct.headers.get("retry-after")
    [event] = gateway.events()
    assert (event["status"], event["http_status"], event["cost_usd"]) == ("error", status, "0")


def test_upstream_error_on_a_stream_request_is_recorded(gateway: Gateway, key: str) -> None:
    with pytest.raises(anthropic.InternalServerError):
        gateway.anthropic(key).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=_user("[[sim status=529]]"), stream=True
        )
    [event] = gateway.events()
    assert (event["status"], event["http_status"]) == ("error", 529)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_upstream_is_502_in_provider_shape(make_gateway) -> None:
    port = _closed_port()
    gateway = make_gateway(openai_base_url=f"http://127.0.0.1:{port}/v1", anthropic_base_url=f"http://127.0.0.1:{port}")
    key = gateway.key("k")
    with pytest.raises(openai.APIStatusError) as error:
        gateway.openai(key).chat.completions.create(model="gpt-4o", messages=_user("hi"))
    assert error.value.status_code == 502 and error.value.body["type"] == "upstream_error"
    with pytest.raises(anthropic.APIStatusError) as anthropic_error:
        gateway.anthropic(key).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=_user("hi"))
    assert anthropic_error.value.status_code == 502
    assert anthropic_error.value.body["error"]["type"] == "upstream_error"
    assert [e["status"] for e in gateway.events()] == ["error", "error"]


def test_upstream_accepting_no_connection_is_502_after_connect_timeout_and_not_billed(make_gateway) -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so connect() hangs.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        gateway = make_gateway(openai_base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=0.3)
        with pytest.raises(openai.APIStatusError) as error:
            gateway.openai(gateway.key("k")).chat.completions.create(model="gpt-4o", messages=_user("hi"))
        assert error.value.status_code == 502 and error.value.body["type"] == "upstream_error"
        assert "no connection within 0.3s" in error.value.body["message"]
        [event] = gateway.events()
        assert (event["status"], event["http_status"], event["estimated"]) == ("error", 502, False)
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_upstream_timeout_is_504_and_recorded_incomplete(make_gateway) -> None:
    gateway = make_gateway(upstream_timeout=0.3)
    key = gateway.key("k")
    with pytest.raises(openai.APIStatusError) as error:
        gateway.openai(key).chat.completions.create(model="gpt-4o", messages=_user("[[sim delay_ms=2000 input=99]]"))
    assert error.value.status_code == 504 and error.value.body["type"] == "upstream_error"
    [event] = gateway.events()
    assert (event["status"], event["http_status"], event["estimated"]) == ("incomplete", 504, True)
