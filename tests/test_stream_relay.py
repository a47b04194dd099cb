"""Streams are relayed as they arrive, not buffered until the provider finishes."""

from __future__ import annotations

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import Gateway


def test_first_events_reach_the_client_before_the_provider_has_finished(gateway: Gateway) -> None:
    key = gateway.key("k")
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim input=10 output=10 chunks=10 chunk_delay_ms=150]]"}],
    }
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as response:
        assert response.headers["x-spendgate-project"] == "unallocated"
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        # The provider is still generating (usage, sent last, not yet reported): nothing
        # was held back until the end.
        assert gateway.sim.log.records[-1].reported_usage is None
        rest = [line for line in lines if line.startswith("data: ")]
    assert '"delta"' in first
    assert rest[-1] == "data: [DONE]"
    assert not any('"choices":[]' in line.replace(" ", "") for line in rest), "usage chunk leaked"
    [event] = gateway.events()
    assert event["status"] == "ok" and event["output_tokens"] == 10


def test_anthropic_events_arrive_whole_and_in_order(gateway: Gateway) -> None:
    key = gateway.key("k")
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim input=10 output=7 chunks=3]]"}],
    }
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json=body,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    ) as response:
        names = [line[len("event: ") :] for line in response.iter_lines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_delta") == 3


# --- streams that end before the provider said it was done ------------------------------------
def test_a_chat_stream_closed_cleanly_before_its_end_is_incomplete_and_the_sdk_raises(gateway: Gateway) -> None:
    client = gateway.openai(gateway.key("k"))
    received = []
    with pytest.raises(openai.APIError, match="ended before the provider finished"):
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[sim input=50 end_after=3]]"}], stream=True
        ):
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "ok", " ok", " ok"]  # what was streamed reached the client
    [event] = gateway.events()
    assert (event["status"], event["estimated"]) == ("incomplete", True)
    assert event["output_tokens"] > 0


def test_a_responses_stream_without_its_final_event_is_incomplete(gateway: Gateway) -> None:
    client = gateway.openai(gateway.key("k"))
    with pytest.raises(openai.APIError):
        for _ in client.responses.create(model="gpt-4o", input="[[sim end_after=2]]", stream=True):
            pass
    [event] = gateway.events()
    assert (event["status"], event["estimated"], event["endpoint"]) == ("incomplete", True, "/v1/responses")


def test_a_messages_stream_without_its_stop_is_incomplete(gateway: Gateway) -> None:
    client = gateway.anthropic(gateway.key("k"))
    with (
        pytest.raises(anthropic.APIError),
        client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "[[sim input=40 cached=60 end_after=2]]"}],
        ) as stream,
    ):
        stream.until_done()
    [event] = gateway.events()
    assert (event["status"], event["estimated"]) == ("incomplete", True)
    assert event["input_tokens"] == 100  # message_start said so exactly; only the output is estimated


def test_a_stream_past_its_deadline_is_cut_and_incomplete(make_gateway) -> None:
    gateway = make_gateway(stream_deadline=0.5)
    client = gateway.openai(gateway.key("k"))
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "[[sim chunks=60 chunk_delay_ms=100]]"}],
            stream=True,
        ):
            received.append(chunk)
    assert 0 < len(received) < 30  # trickling on, well within the upstream timeout, then cut
    [event] = gateway.events()
    assert (event["status"], event["estimated"]) == ("incomplete", True)


# --- an event too large to read ----------------------------------------------------------------
def test_an_oversized_stream_line_is_passed_through_unread_and_the_request_estimated(make_gateway) -> None:
    gateway = make_gateway(max_stream_event_bytes=64 * 1024)
    key = gateway.key("k")
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim input=20 output=7 long_delta=1000000]]"}],
    }
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"  # the stream went on after it, and ended as the provider ended it
    [huge] = [line for line in lines if len(line) > 1_000_000]  # whole, byte for byte
    assert orjson.loads(huge[len("data: ") :])["choices"][0]["delta"]["content"] == "x" * 1_000_000
    assert not any('"choices":[]' in line.replace(" ", "") for line in lines), "usage chunk leaked"
    [event] = gateway.events()
    # The usage came after it, exact; the request is flagged all the same (the gateway did not read it all).
    assert (event["status"], event["input_tokens"], event["output_tokens"], event["estimated"]) == (
        "ok",
        20,
        7,
        True,
    )
