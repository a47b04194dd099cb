"""Gemini's native API through the gateway with the official google-genai SDK: generateContent and
streamGenerateContent (SSE), usage from usageMetadata with thinking and cached tokens, priced from
genai-prices, errors in Google's shape."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from spendgate.settings import ProviderConfig
from tests.conftest import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, Gateway, Simulator

UPSTREAM_GEMINI_KEY = "AIza-upstream-gemini-test"
# google-genai's async client subclasses aiohttp's ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
MTOK = Decimal(1_000_000)
# gemini-2.5-flash list prices (USD / MTok): thinking is billed as output.
FLASH_IN, FLASH_CACHED, FLASH_OUT = Decimal("0.3"), Decimal("0.03"), Decimal("2.5")


@pytest.fixture
def gemini_gateway(make_gateway, simulator: Simulator) -> Gateway:
    gateway = make_gateway(
        providers={
            "gemini": ProviderConfig(name="gemini", base_url=simulator.url, api_key_env="GEMINI_API_KEY", kind="gemini")
        },
        credentials={
            "OPENAI_API_KEY": UPSTREAM_OPENAI_KEY,
            "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC_KEY,
            "GEMINI_API_KEY": UPSTREAM_GEMINI_KEY,
        },
    )
    gateway.team("research")
    gateway.project("papers", team="research")
    return gateway


def _client(gateway: Gateway, key: str) -> genai.Client:
    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(base_url=gateway.url, retry_options=types.HttpRetryOptions(attempts=1)),
    )
    gateway._clients.append(client)  # closed with the gateway (and held: a collected client closes its HTTP client)
    return client


def test_generate_content_with_thinking_and_cached_tokens(gemini_gateway: Gateway) -> None:
    gateway = gemini_gateway
    key = gateway.key("papers-app", project="papers")
    client = _client(gateway, key)
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="[[sim input=1000 cached=400 output=300 reasoning=200]] summarize"
    )
    assert response.text
    meta = response.usage_metadata
    assert (meta.prompt_token_count, meta.candidates_token_count, meta.thoughts_token_count) == (1000, 100, 200)
    assert meta.cached_content_token_count == 400
    [record] = gateway.sim.log.records
    assert record.path.endswith("/models/gemini-2.5-flash:generateContent")
    # The provider got the gateway's credential, never the gateway key.
    assert record.headers["x-goog-api-key"] == UPSTREAM_GEMINI_KEY
    [event] = gateway.events()
    assert (event["provider"], event["model"], event["project"]) == ("gemini", "gemini-2.5-flash", "papers")
    assert (event["input_tokens"], event["cached_input_tokens"]) == (1000, 400)
    assert (event["output_tokens"], event["reasoning_tokens"]) == (300, 200)
    assert event["endpoint"] == "/{version}/models/{model}:generateContent"
    expected = (600 * FLASH_IN + 400 * FLASH_CACHED + 300 * FLASH_OUT) / MTOK
    assert Decimal(event["cost_usd"]) == expected
    assert event["estimated"] is False and event["status"] == "ok"
    assert "google/gemini-2.5-flash" in event["price_source"]


def test_stream_generate_content_sse(gemini_gateway: Gateway) -> None:
    gateway = gemini_gateway
    client = _client(gateway, gateway.key("papers-app", project="papers"))
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="[[sim input=50 output=40 reasoning=10 chunks=5]]"
        )
    )
    assert "".join(chunk.text or "" for chunk in chunks).count("ok") == 5
    assert chunks[-1].usage_metadata.candidates_token_count == 30
    [event] = gateway.events()
    assert event["stream"] is True
    assert (event["input_tokens"], event["output_tokens"], event["reasoning_tokens"]) == (50, 40, 10)
    assert Decimal(event["cost_usd"]) == (50 * FLASH_IN + 40 * FLASH_OUT) / MTOK
    assert event["estimated"] is False


async def test_async_client_and_a_stream_cut_short(gemini_gateway: Gateway) -> None:
    gateway = gemini_gateway
    client = _client(gateway, gateway.key("papers-app", project="papers"))
    response = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="[[sim input=20 output=8]]")
    assert response.usage_metadata.total_token_count == 28
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises on a broken stream
        async for _ in await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="[[sim input=20 output=8 break_after=2]]"
        ):
            pass
    await client.aio.aclose()
    events = await asyncio.to_thread(gateway.events)
    assert [e["status"] for e in events] == ["ok", "incomplete"]
    cut = events[1]
    assert cut["input_tokens"] == 20 and cut["estimated"] is True


def test_json_array_stream_without_alt_sse(gemini_gateway: Gateway) -> None:
    gateway = gemini_gateway
    key = gateway.key("papers-app", project="papers")
    answer = httpx.post(
        f"{gateway.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        params={"key": key},
        json={"contents": [{"role": "user", "parts": [{"text": "[[sim input=30 output=12]]"}]}]},
    )
    assert answer.status_code == 200 and isinstance(answer.json(), list)
    # ?key= is the gateway key: it never goes upstream.
    assert "key=" not in (gateway.sim.log.records[0].path or "")
    [event] = gateway.events()
    assert (event["input_tokens"], event["output_tokens"]) == (30, 12)


def test_errors_in_googles_shape(gemini_gateway: Gateway) -> None:
    gateway = gemini_gateway
    stranger = _client(gateway, "sg-not-a-key")  # held: a genai.Client closes its HTTP client when collected
    with pytest.raises(errors.ClientError) as unknown:
        stranger.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert unknown.value.code == 401 and unknown.value.status == "UNAUTHENTICATED"
    key = gateway.key("papers-app", project="papers")
    refused = httpx.post(
        f"{gateway.url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": key, "x-spendgate-project": "nope"},
        json={"contents": "hi"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "unknown project" in refused.json()["error"]["message"]
    assert gateway.sim.log.records == []  # nothing went upstream
    # Upstream errors pass through unchanged, and are recorded.
    client = _client(gateway, key)
    with pytest.raises(errors.ServerError) as upstream:
        client.models.generate_content(model="gemini-2.5-flash", contents="[[sim status=503]]")
    assert upstream.value.code == 503
    assert [e["status"] for e in gateway.events()] == ["error"]


def test_gemini_paths_without_a_gemini_provider_are_a_404_in_googles_shape(gateway: Gateway) -> None:
    answer = httpx.post(f"{gateway.url}/v1beta/models/gemini-2.5-flash:generateContent", json={})
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"
    assert 'kind = "gemini"' in answer.json()["error"]["message"]


def test_the_gemini_prefix_on_the_gateways_chat_completions(gemini_gateway: Gateway) -> None:
    gateway = gemini_gateway
    gateway.openai(gateway.key("papers-app", project="papers")).chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "[[sim input=100 output=10]]"}]
    )
    [record] = gateway.sim.log.records
    assert record.path == "/v1beta/openai/chat/completions" and record.body["model"] == "gemini-2.5-flash"
    assert record.headers["x-goog-api-key"] == UPSTREAM_GEMINI_KEY
    [event] = gateway.events()
    assert event["provider"] == "gemini"
    assert Decimal(event["cost_usd"]) == (100 * FLASH_IN + 10 * FLASH_OUT) / MTOK
