"""Streams are relayed as they arrive, not buffered until the provider finishes."""

from __future__ import annotations

import httpx

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
