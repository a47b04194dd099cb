"""The OpenAI SDK through the gateway: every endpoint, streamed and not, priced exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import UPSTREAM_OPENAI_KEY, Gateway

GPT_4O_INPUT = Decimal("2.5") / 1_000_000
GPT_4O_CACHED = Decimal("1.25") / 1_000_000
GPT_4O_OUTPUT = Decimal("10") / 1_000_000


@pytest.fixture
def key(gateway: Gateway) -> str:
    gateway.team("payments", cost_center="CC-1")
    gateway.project("checkout", team="payments")
    return gateway.key("checkout-prod", project="checkout")


def test_chat_non_stream_is_priced_exactly_with_cached_tokens(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[[sim input=1000 cached=400 output=200]] hi"}]
    )
    completion = raw.parse()
    assert completion.usage.prompt_tokens == 1000
    assert completion.choices[0].message.content
    assert raw.headers["x-spendgate-cost-usd"] == "0.004"
    assert raw.headers["x-spendgate-project"] == "checkout"
    [event] = gateway.events()
    assert event["id"] == raw.headers["x-spendgate-request-id"]
    assert event["cost_usd"] == "0.004"
    assert Decimal(event["cost_usd"]) == 600 * GPT_4O_INPUT + 400 * GPT_4O_CACHED + 200 * GPT_4O_OUTPUT
    assert (event["input_tokens"], event["cached_input_tokens"], event["output_tokens"]) == (1000, 400, 200)
    assert (event["project"], event["team"], event["provider"], event["status"]) == (
        "checkout",
        "payments",
        "openai",
        "ok",
    )
    assert event["estimated"] is False
    assert event["rates"]["input_mtok"] == "2.5"


def test_reasoning_tokens_are_output_tokens_priced_at_output_rate(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    client.chat.completions.create(
        model="o3-mini", messages=[{"role": "user", "content": "[[sim input=100 output=900 reasoning=700]]"}]
    )
    [event] = gateway.events()
    assert (event["output_tokens"], event["reasoning_tokens"]) == (900, 700)
    # o3-mini: $1.10 / MTok in, $4.40 / MTok out; reasoning is billed as output.
    assert Decimal(event["cost_usd"]) == Decimal("1.1") * 100 / 10**6 + Decimal("4.4") * 900 / 10**6


def test_stream_without_include_usage_gets_none_but_is_recorded(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "[[sim input=50 output=20 chunks=5]]"}],
            stream=True,
        )
    )
    assert chunks, "the stream was empty"
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks), "the usage-only chunk leaked to the client"
    # The gateway asked the provider for usage on the client's behalf.
    assert gateway.sim.log.records[-1].body["stream_options"] == {"include_usage": True}
    [event] = gateway.events()
    assert (event["input_tokens"], event["output_tokens"], event["estimated"]) == (50, 20, False)
    assert Decimal(event["cost_usd"]) == 50 * GPT_4O_INPUT + 20 * GPT_4O_OUTPUT


def test_stream_with_include_usage_keeps_the_usage_chunk(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "[[sim input=50 cached=10 output=20]]"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 50
    [event] = gateway.events()
    assert event["cached_input_tokens"] == 10 and event["stream"] is True


def test_legacy_completions_stream(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    text = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="[[sim input=30 output=12]]", stream=True
        )
        if c.choices
    )
    assert text
    [event] = gateway.events()
    assert (event["endpoint"], event["input_tokens"], event["output_tokens"]) == ("/v1/completions", 30, 12)
    assert event["cost_usd"] is not None


def test_responses_api_streamed_and_not(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    response = client.responses.create(model="gpt-4o", input="[[sim input=300 cached=100 output=40]]")
    assert response.usage.input_tokens == 300
    with client.responses.stream(model="gpt-4o", input="[[sim input=200 output=30]]") as stream:
        final = stream.get_final_response()
    assert final.usage.output_tokens == 30
    first, second = gateway.events()
    assert first["endpoint"] == second["endpoint"] == "/v1/responses"
    assert Decimal(first["cost_usd"]) == 200 * GPT_4O_INPUT + 100 * GPT_4O_CACHED + 40 * GPT_4O_OUTPUT
    assert Decimal(second["cost_usd"]) == 200 * GPT_4O_INPUT + 30 * GPT_4O_OUTPUT
    assert second["stream"] is True


def test_embeddings(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    result = client.embeddings.create(model="text-embedding-3-small", input="[[sim input=1234]] text")
    assert len(result.data[0].embedding) > 0
    [event] = gateway.events()
    assert event["input_tokens"] == 1234 and event["output_tokens"] == 0
    assert Decimal(event["cost_usd"]) == Decimal("0.02") * 1234 / 10**6


def test_models_pass_through_unbilled(gateway: Gateway, key: str) -> None:
    models = gateway.openai(key).models.list()
    assert len(models.data) > 0
    assert gateway.events() == []


async def test_async_client_stream_and_not(gateway: Gateway, key: str) -> None:
    client = gateway.async_openai(key)
    async with client:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=10 output=5]]"}]
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "[[sim input=20 output=6]]"}],
            stream=True,
        )
        async for _ in stream:
            pass
    first, second = gateway.events()
    assert (first["input_tokens"], first["stream"]) == (10, False)
    assert (second["input_tokens"], second["output_tokens"], second["stream"]) == (20, 6, True)


def test_gateway_key_never_reaches_the_provider(gateway: Gateway, key: str) -> None:
    client = gateway.openai(key)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert len(gateway.sim.log.records) == 2
    for record in gateway.sim.log.records:
        assert record.headers["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"
        assert key not in str(record.headers)
        assert not any(name.startswith("x-spendgate") for name in record.headers)
