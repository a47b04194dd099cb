"""OpenAI-compatible providers by model prefix, unpriced models, and negotiated prices with
effective dates, all through the running gateway."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest

from spendgate.pricing import PriceBook, load_overrides
from spendgate.settings import ProviderConfig
from tests.conftest import UPSTREAM_ANTHROPIC_KEY, Gateway


def _chat(gateway: Gateway, key: str, model: str, directive: str = "[[sim input=1000 output=500]]"):
    return gateway.openai(key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": directive}]
    )


def _local_provider(gateway_sim_url: str) -> dict[str, ProviderConfig]:
    return {"local": ProviderConfig(name="local", base_url=f"{gateway_sim_url}/v1", api_key_env="LOCAL_LLM_KEY")}


def test_unknown_model_is_recorded_flagged_unpriced_never_zero(gateway: Gateway) -> None:
    key = gateway.key("k")
    raw = _chat(gateway, key, "my-finetune-v7")
    assert "x-spendgate-cost-usd" not in raw.headers
    _chat(gateway, key, "gpt-4o-mini")
    unpriced, priced = gateway.events()
    assert (unpriced["model"], unpriced["cost_usd"], unpriced["priced"]) == ("my-finetune-v7", None, False)
    assert unpriced["input_tokens"] == 1000  # the usage is kept for re-pricing later
    assert priced["priced"] is True
    report = gateway.report("model")
    rows = {row["model"]: row for row in report["rows"]}
    assert rows["my-finetune-v7"]["unpriced_requests"] == 1
    assert rows["my-finetune-v7"]["cost_usd"] is None  # unknown, not $0
    assert report["unpriced_requests"] == 1
    assert Decimal(report["total_cost_usd"]) == Decimal(priced["cost_usd"])


def test_openai_compatible_provider_by_prefix(make_gateway, simulator) -> None:
    gateway = make_gateway(
        providers=_local_provider(simulator.url),
        credentials={
            "OPENAI_API_KEY": "sk-openai",
            "ANTHROPIC_API_KEY": "sk-ant",
            "LOCAL_LLM_KEY": "sk-local",
        },
    )
    key = gateway.key("k")
    _chat(gateway, key, "local/llama-3.1-8b")
    [record] = gateway.sim.log.records
    assert record.body["model"] == "llama-3.1-8b"  # the prefix only chooses the provider
    assert record.headers["authorization"] == "Bearer sk-local"
    [event] = gateway.events()
    assert (event["provider"], event["model"], event["priced"]) == ("local", "llama-3.1-8b", False)


def test_overrides_price_private_models_and_negotiated_rates_by_date(make_gateway, simulator, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        """
[[price]]
provider = "local"
model = "llama-*"
input_mtok = "0.10"
output_mtok = "0.20"

[[price]]
provider = "openai"
model = "gpt-4o"
effective_from = "2026-06-01"
input_mtok = "2"
cached_input_mtok = "1"
output_mtok = "8"
"""
    )
    now = {"t": datetime(2026, 5, 31, 23, 59, tzinfo=UTC)}
    gateway = make_gateway(
        providers=_local_provider(simulator.url),
        credentials={
            "OPENAI_API_KEY": "sk-openai",
            "ANTHROPIC_API_KEY": "sk-ant",
            "LOCAL_LLM_KEY": "sk-local",
        },
        prices=PriceBook(
            load_overrides(prices),
            genai_provider_ids={"openai": "openai", "anthropic": "anthropic", "local": None},
        ),
        clock=lambda: now["t"],
    )
    key = gateway.key("k")
    _chat(gateway, key, "local/llama-3.1-8b")
    _chat(gateway, key, "gpt-4o")  # before the negotiated rate: list price
    now["t"] = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    raw = _chat(gateway, key, "gpt-4o")  # from its first instant: the negotiated rate
    local, before, after = gateway.events()
    assert Decimal(local["cost_usd"]) == (1000 * Decimal("0.10") + 500 * Decimal("0.20")) / 10**6
    assert "prices.toml#1" in local["price_source"]
    assert Decimal(before["cost_usd"]) == (1000 * Decimal("2.5") + 500 * Decimal(10)) / 10**6
    assert "genai-prices" in before["price_source"]
    assert Decimal(after["cost_usd"]) == (1000 * Decimal(2) + 500 * Decimal(8)) / 10**6
    assert raw.headers["x-spendgate-cost-usd"] == after["cost_usd"]
    assert after["rates"]["input_mtok"] == "2"
    assert before["ts"].startswith("2026-05-31") and after["ts"].startswith("2026-06-01")


def test_missing_provider_credential_is_a_clear_502_that_reaches_no_provider(make_gateway) -> None:
    gateway = make_gateway(credentials={})
    key = gateway.key("k")
    with pytest.raises(openai.APIStatusError) as error:
        _chat(gateway, key, "gpt-4o")
    assert error.value.status_code == 502
    assert "OPENAI_API_KEY" in error.value.body["message"]
    assert gateway.sim.log.records == []


def test_an_unknown_provider_prefix_is_a_400_listing_the_configured_ones(make_gateway, simulator) -> None:
    """``groq/…`` without ``[providers.groq]`` went to OpenAI under the full name."""
    gateway = make_gateway(
        providers=_local_provider(simulator.url),
        credentials={"OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant", "LOCAL_LLM_KEY": "sk-local"},
    )
    key = gateway.key("k")
    with pytest.raises(openai.BadRequestError) as unknown:
        _chat(gateway, key, "groq/llama-3.1-8b-instant")
    assert unknown.value.body["type"] == "invalid_request_error"
    assert "no provider 'groq' is configured (providers: openai, anthropic, local)" in unknown.value.body["message"]
    assert "[providers.groq]" in unknown.value.body["message"]
    with pytest.raises(anthropic.BadRequestError, match="no provider 'groq'"):
        gateway.anthropic(key).messages.create(
            model="groq/llama-3.1-8b-instant", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.BadRequestError, match="names a provider but no model"):
        _chat(gateway, key, "openai/")
    with pytest.raises(anthropic.BadRequestError, match="OpenAI models are served on /v1/chat/completions"):
        gateway.anthropic(key).messages.create(
            model="openai/gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert gateway.sim.log.records == [] and gateway.events() == []


def test_anthropic_models_on_chat_completions_go_to_anthropics_openai_compatible_endpoint(gateway: Gateway) -> None:
    """``anthropic/claude-haiku-4-5`` on /v1/chat/completions was forwarded to OpenAI and recorded
    unpriced under provider openai; it goes to Anthropic's OpenAI-compatible endpoint, priced."""
    key = gateway.key("k")
    raw = _chat(gateway, key, "anthropic/claude-haiku-4-5")
    stream = gateway.openai(key).chat.completions.create(
        model="anthropic/claude-haiku-4-5",
        messages=[{"role": "user", "content": "[[sim input=2000 output=300]]"}],
        stream=True,
    )
    assert [chunk.usage for chunk in stream if chunk.usage] == []  # the usage the gateway asked for is withheld
    plain, streamed = gateway.sim.log.records
    for record in (plain, streamed):
        assert record.path == "/v1/chat/completions"
        assert record.body["model"] == "claude-haiku-4-5"
        assert record.headers["authorization"] == f"Bearer {UPSTREAM_ANTHROPIC_KEY}"  # Anthropic's key
    assert streamed.body["stream_options"] == {"include_usage": True}
    first, second = gateway.events()
    for event, (tokens_in, tokens_out) in ((first, (1000, 500)), (second, (2000, 300))):
        assert (event["provider"], event["model"], event["priced"]) == ("anthropic", "claude-haiku-4-5", True)
        assert Decimal(event["cost_usd"]) == (tokens_in * Decimal(1) + tokens_out * Decimal(5)) / 10**6
    assert raw.headers["x-spendgate-cost-usd"] == first["cost_usd"]
    with pytest.raises(openai.BadRequestError, match="Anthropic models are served on /v1/messages"):
        gateway.openai(key).responses.create(model="anthropic/claude-haiku-4-5", input="hi")
    assert len(gateway.sim.log.records) == 2


def test_paths_not_served_answer_404_in_their_familys_shape(gateway: Gateway) -> None:
    key = gateway.key("k")
    # Anthropic's Files API (its /v1/files, told apart by anthropic-version) is not served.
    with pytest.raises(anthropic.NotFoundError) as files:
        gateway.anthropic(key).beta.files.list()
    assert files.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "spendgate does not serve /v1/files"},
    }
    with pytest.raises(openai.NotFoundError) as images:
        gateway.openai(key).images.generate(prompt="a cat")
    assert images.value.body["type"] == "not_found_error" and "/v1/images/generations" in images.value.body["message"]
