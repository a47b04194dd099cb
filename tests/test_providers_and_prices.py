"""OpenAI-compatible providers by model prefix, unpriced models, and negotiated prices with
effective dates, all through the running gateway."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate.pricing import PriceBook, load_overrides
from spendgate.settings import ProviderConfig
from tests.conftest import Gateway


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
    import openai

    gateway = make_gateway(credentials={})
    key = gateway.key("k")
    with pytest.raises(openai.APIStatusError) as error:
        _chat(gateway, key, "gpt-4o")
    assert error.value.status_code == 502
    assert "OPENAI_API_KEY" in error.value.body["message"]
    assert gateway.sim.log.records == []
