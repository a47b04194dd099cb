"""The Anthropic SDK through the gateway: Messages streamed and not, cache reads and writes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import UPSTREAM_ANTHROPIC_KEY, Gateway

MTOK = Decimal(1_000_000)
# claude-haiku-4-5 list prices (USD / MTok).
HAIKU_IN, HAIKU_OUT, HAIKU_READ, HAIKU_WRITE_5M, HAIKU_WRITE_1H = (
    Decimal("1"),
    Decimal("5"),
    Decimal("0.1"),
    Decimal("1.25"),
    Decimal("2"),
)


@pytest.fixture
def key(gateway: Gateway) -> str:
    gateway.team("support")
    gateway.project("chat-assistant", team="support")
    return gateway.key("assistant", project="chat-assistant")


def _message(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_cache_reads_and_writes_are_priced_by_their_own_rates(gateway: Gateway, key: str) -> None:
    client = gateway.anthropic(key)
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=300,
        messages=_message("[[sim input=100 cached=2000 cache_write=500 cache_write_1h=200 output=300]]"),
    )
    message = raw.parse()
    # Anthropic's own convention reaches the client untouched: input excludes the cache.
    assert message.usage.input_tokens == 100
    assert message.usage.cache_read_input_tokens == 2000
    [event] = gateway.events()
    # Normalized: input counts every input token, cached or not.
    assert event["input_tokens"] == 2600
    assert (event["cached_input_tokens"], event["cache_write_tokens"]) == (2000, 500)
    expected = (
        100 * HAIKU_IN + 2000 * HAIKU_READ + 300 * HAIKU_WRITE_5M + 200 * HAIKU_WRITE_1H + 300 * HAIKU_OUT
    ) / MTOK
    assert Decimal(event["cost_usd"]) == expected
    assert Decimal(raw.headers["x-spendgate-cost-usd"]) == expected
    assert event["provider"] == "anthropic" and event["endpoint"] == "/v1/messages"


def test_stream_usage_from_message_start_and_message_delta(gateway: Gateway, key: str) -> None:
    client = gateway.anthropic(key)
    with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=100,
        messages=_message("[[sim input=40 cached=1000 output=77 chunks=6]]"),
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.usage.output_tokens == 77
    [event] = gateway.events()
    assert (event["input_tokens"], event["cached_input_tokens"], event["output_tokens"]) == (1040, 1000, 77)
    assert event["stream"] is True and event["estimated"] is False
    assert Decimal(event["cost_usd"]) == (40 * HAIKU_IN + 1000 * HAIKU_READ + 77 * HAIKU_OUT) / MTOK


@pytest.mark.filterwarnings("ignore:The model 'claude-sonnet-4-5' is deprecated:DeprecationWarning")
def test_tiered_price_above_200k_input(gateway: Gateway, key: str) -> None:
    client = gateway.anthropic(key)
    client.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=_message("[[sim input=250000 output=1000]]")
    )
    [event] = gateway.events()
    # Above 200k input tokens every token of the request is billed at the long-context rate.
    assert Decimal(event["cost_usd"]) == (250000 * Decimal(6) + 1000 * Decimal("22.5")) / MTOK


async def test_async_client_stream_and_not(gateway: Gateway, key: str) -> None:
    client = gateway.async_anthropic(key)
    async with client:
        await client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=_message("[[sim input=10 output=5]]")
        )
        stream = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=_message("[[sim input=20 output=8]]"),
            stream=True,
        )
        async for _ in stream:
            pass
    first, second = gateway.events()
    assert (first["input_tokens"], first["output_tokens"], first["stream"]) == (10, 5, False)
    assert (second["input_tokens"], second["output_tokens"], second["stream"]) == (20, 8, True)


def test_count_tokens_passes_through_unbilled(gateway: Gateway, key: str) -> None:
    client = gateway.anthropic(key)
    counted = client.messages.count_tokens(model="claude-haiku-4-5", messages=_message("hello there"))
    assert counted.input_tokens > 0
    assert gateway.events() == []


def test_provider_gets_its_own_credential_not_the_gateway_key(gateway: Gateway, key: str) -> None:
    client = gateway.anthropic(key)
    client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=_message("hi"))
    [record] = gateway.sim.log.records
    assert record.headers["x-api-key"] == UPSTREAM_ANTHROPIC_KEY
    assert "authorization" not in record.headers
    assert record.headers["anthropic-version"]
    assert key not in str(record.headers)
