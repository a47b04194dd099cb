"""Prices the invoice will show, through the official SDKs: a request is charged at the service
tier the provider served it at (OpenAI ``flex`` half price, ``priority`` about double), and
Claude Sonnet 4 over 200K input tokens at Anthropic's long-context rates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import openai
import pytest

from spendgate.budgets.model import Budget, Scope
from spendgate.ledger.events import UsageEvent
from tests.conftest import Gateway

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)  # OpenAI's tier prices are in force (from 2026-10-12)
MTOK = Decimal(1_000_000)


@pytest.fixture
def tiered(make_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch) -> tuple[Gateway, str, list]:
    """A gateway at a fixed instant, a key, and every event it records (as recorded, so the
    event's service tier can be seen before the ledger stores it)."""
    gateway = make_gateway(clock=lambda: NOW)
    recorded: list[UsageEvent] = []
    writer = gateway.app.gateway.writer
    record = writer.record

    def keep(event: UsageEvent) -> None:
        recorded.append(event)
        record(event)

    monkeypatch.setattr(writer, "record", keep)
    return gateway, gateway.key("k"), recorded


def list_price(model: str, tier: str | None, **tokens: int) -> Decimal:
    """What genai-prices itself charges for ``tokens`` of ``model`` at ``tier`` at NOW."""
    usage = genai_prices.Usage(**tokens)
    context = {"service_tier": tier} if tier else None  # how genai-prices selects a tier's prices
    return genai_prices.calc_price(
        usage, model, provider_id="openai", genai_request_timestamp=NOW, price_context=context
    ).total_price


@pytest.mark.parametrize(("asked", "tier"), [("priority", "priority"), ("flex", "flex"), ("fast", "priority")])
def test_chat_completion_is_charged_the_tier_price_the_response_reports(tiered, asked: str, tier: str) -> None:
    gateway, key, recorded = tiered
    raw = gateway.openai(key).chat.completions.with_raw_response.create(
        model="gpt-5",
        service_tier=asked,
        messages=[{"role": "user", "content": "[[sim input=20000 cached=8000 output=3000 reasoning=1000]]"}],
    )
    assert raw.parse().service_tier == tier  # what OpenAI answers, untouched
    expected = list_price("gpt-5", tier, input_tokens=20000, cache_read_tokens=8000, output_tokens=3000)
    standard = list_price("gpt-5", None, input_tokens=20000, cache_read_tokens=8000, output_tokens=3000)
    assert expected != standard
    assert Decimal(raw.headers["x-spendgate-cost-usd"]) == expected
    [event] = gateway.events()
    assert Decimal(event["cost_usd"]) == expected
    assert event["price_source"] == f"genai-prices {genai_prices.__version__} openai/gpt-5 ({tier} tier)"
    assert [e.service_tier for e in recorded] == [tier]


def test_streamed_chat_and_responses_api_are_charged_the_tier_price(tiered) -> None:
    gateway, key, recorded = tiered
    client = gateway.openai(key)
    stream = client.chat.completions.create(
        model="gpt-5-mini",
        service_tier="priority",
        stream=True,
        messages=[{"role": "user", "content": "[[sim input=5000 output=700]]"}],
    )
    assert all(chunk.service_tier == "priority" for chunk in stream)
    response = client.responses.create(
        model="gpt-5-mini", service_tier="flex", input="[[sim input=6000 cached=1000 output=900]]"
    )
    assert response.service_tier == "flex"
    with client.responses.stream(
        model="gpt-5-mini", service_tier="flex", input="[[sim input=6000 cached=1000 output=900]]"
    ) as events:
        assert events.get_final_response().service_tier == "flex"
    chat, responses, responses_streamed = gateway.events()
    assert Decimal(chat["cost_usd"]) == list_price("gpt-5-mini", "priority", input_tokens=5000, output_tokens=700)
    flex = list_price("gpt-5-mini", "flex", input_tokens=6000, cache_read_tokens=1000, output_tokens=900)
    assert Decimal(responses["cost_usd"]) == Decimal(responses_streamed["cost_usd"]) == flex
    assert [e.service_tier for e in recorded] == ["priority", "flex", "flex"]


def test_the_tier_the_response_reports_wins_over_the_one_asked(tiered) -> None:
    """Asked for priority, served (and billed) at default: charged the standard price."""
    gateway, key, recorded = tiered
    raw = gateway.openai(key).chat.completions.with_raw_response.create(
        model="gpt-5",
        service_tier="priority",
        messages=[{"role": "user", "content": "[[sim input=1000 output=100 service_tier=default]]"}],
    )
    assert Decimal(raw.headers["x-spendgate-cost-usd"]) == list_price(
        "gpt-5", None, input_tokens=1000, output_tokens=100
    )
    assert [e.service_tier for e in recorded] == ["standard"]


def test_the_tier_asked_for_applies_when_the_response_omits_it(tiered) -> None:
    gateway, key, recorded = tiered
    raw = gateway.openai(key).chat.completions.with_raw_response.create(
        model="gpt-5",
        service_tier="flex",
        messages=[{"role": "user", "content": "[[sim input=1000 output=100 service_tier=none]]"}],
    )
    assert raw.parse().service_tier is None
    expected = list_price("gpt-5", "flex", input_tokens=1000, output_tokens=100)
    assert Decimal(raw.headers["x-spendgate-cost-usd"]) == expected
    # A legacy completion reports no tier at all: the request's applies there too.
    gateway.openai(key).completions.create(
        model="gpt-5", prompt="[[sim input=1000 output=100]]", extra_body={"service_tier": "priority"}
    )
    _, legacy = gateway.events()
    assert Decimal(legacy["cost_usd"]) == list_price("gpt-5", "priority", input_tokens=1000, output_tokens=100)
    assert [e.service_tier for e in recorded] == ["flex", "priority"]


def test_no_tier_anywhere_is_the_standard_price_and_recorded_as_unknown(tiered) -> None:
    gateway, key, recorded = tiered
    raw = gateway.openai(key).chat.completions.with_raw_response.create(
        model="gpt-5", messages=[{"role": "user", "content": "[[sim input=1000 output=100 service_tier=none]]"}]
    )
    assert Decimal(raw.headers["x-spendgate-cost-usd"]) == list_price(
        "gpt-5", None, input_tokens=1000, output_tokens=100
    )
    assert [e.service_tier for e in recorded] == [None]


def test_a_tier_without_a_known_price_is_charged_standard_and_flagged(tiered) -> None:
    """Anthropic reports Priority Tier usage as ``priority``; genai-prices lists no price for it."""
    gateway, key, recorded = tiered
    raw = gateway.anthropic(key).messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "[[sim input=1000 output=50 service_tier=priority]]"}],
    )
    assert raw.parse().usage.service_tier == "priority"
    assert Decimal(raw.headers["x-spendgate-cost-usd"]) == (1000 * Decimal(1) + 50 * Decimal(5)) / MTOK
    [event] = gateway.events()
    assert event["price_source"].endswith("anthropic/claude-haiku-4-5 (priority tier not listed: standard price)")
    assert [e.service_tier for e in recorded] == ["priority"]


def test_a_priority_request_reserves_at_the_priority_price(make_gateway: Callable[..., Gateway]) -> None:
    """Budget admission prices the worst case at the tier asked for, not at half of it."""
    gateway = make_gateway(clock=lambda: NOW)
    key = gateway.key("k")
    gateway.store.create_budget(Budget(name="tight", scope=Scope.parse("org"), limit_usd=Decimal("0.20")))
    gateway.wait_for_directory()
    client = gateway.openai(key)
    # gpt-5, 100,000 input tokens estimated (300,000 characters) and 1,000 output: $0.135 at the
    # standard price fits the $0.20 budget, $0.27 at the priority price does not.
    ask: dict[str, Any] = {
        "model": "gpt-5",
        "max_completion_tokens": 1000,
        "messages": [{"role": "user", "content": "x" * 300_000}],
    }
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(**ask, service_tier="priority")
    assert refused.value.status_code == 402
    assert gateway.sim.log.records == []  # refused before anything went upstream
    client.chat.completions.create(**ask, service_tier="default")
    assert len(gateway.sim.log.records) == 1


# --- Claude Sonnet 4's long-context tier (the supplement) -------------------------------------


def test_sonnet_4_over_200k_input_tokens_is_charged_the_long_context_rate(tiered) -> None:
    gateway, key, recorded = tiered
    client = gateway.anthropic(key)
    # 150,000 uncached + 40,000 cache reads + 20,000 cache writes (5,000 for an hour): 210,000
    # input tokens, so every token is charged at the long-context rates.
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-20250514",
        max_tokens=2000,
        messages=[
            {
                "role": "user",
                "content": "[[sim input=150000 cached=40000 cache_write=20000 cache_write_1h=5000 output=2000]]",
            }
        ],
    )
    # Anthropic's published long-context prices (USD / MTok): input 6, output 22.50, cache reads
    # 0.60, 5-minute writes 7.50, 1-hour writes 12.
    expected = (
        150000 * Decimal(6)
        + 40000 * Decimal("0.60")
        + 15000 * Decimal("7.50")
        + 5000 * Decimal(12)
        + 2000 * Decimal("22.50")
    ) / MTOK
    assert Decimal(raw.headers["x-spendgate-cost-usd"]) == expected
    # Below the threshold: the base rates.
    client.messages.create(
        model="claude-sonnet-4-20250514",
        max_tokens=2000,
        messages=[{"role": "user", "content": "[[sim input=200000 output=2000]]"}],
    )
    long_context, base = gateway.events()
    assert Decimal(long_context["cost_usd"]) == expected
    assert "spendgate supplement#1 (https://docs.anthropic.com/" in long_context["price_source"]
    assert long_context["price_source"].endswith("[input tokens > 200000]")
    assert Decimal(base["cost_usd"]) == (200000 * Decimal(3) + 2000 * Decimal(15)) / MTOK
    assert "supplement" not in base["price_source"]
    # The same rates genai-prices lists for Claude Sonnet 4.5's long context.
    sonnet_45 = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=210000,
            cache_read_tokens=40000,
            cache_write_tokens=20000,
            cache_write_1h_tokens=5000,
            cache_write_5m_tokens=15000,
            output_tokens=2000,
        ),
        "claude-sonnet-4-5",
        provider_id="anthropic",
        genai_request_timestamp=NOW,
    ).total_price
    assert sonnet_45 == expected
    assert [e.service_tier for e in recorded] == ["standard", "standard"]
