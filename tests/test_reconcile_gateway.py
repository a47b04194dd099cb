"""Reconciliation end to end, on SQLite and PostgreSQL: traffic through the real gateway and
around it, the simulated provider's admin reports built from what it actually served, read by
the admin clients, and compared with the ledger's own report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anthropic
import openai

from spendgate.pricing import PriceBook
from spendgate.providers.admin import admin_client, fetch_provider_report
from spendgate.reconcile import Verdict, ledger_rows_from_report, reconcile, rows_to_import
from spendgate.reports.spec import ReportQuery
from spendgate.simulator import costs_from_usage, usage_from_log
from tests.conftest import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY

AT = datetime(2026, 11, 3, 15, 30, tzinfo=UTC)
DAY = AT.date()
ADMIN_KEYS = {"OPENAI_ADMIN_KEY": "sk-admin-openai", "ANTHROPIC_ADMIN_KEY": "sk-ant-admin"}
KEY_IDS = {
    UPSTREAM_OPENAI_KEY: "key_gateway_openai",
    UPSTREAM_ANTHROPIC_KEY: "key_gateway_anthropic",
    "sk-direct-openai": "key_direct_openai",
    "sk-ant-direct": "key_direct_anthropic",
}


def chat(client: Any, directive: str) -> None:
    client.chat.completions.create(model="gpt-4o-2024-08-06", messages=[{"role": "user", "content": directive}])


def message(client: Any, directive: str) -> None:
    client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": directive}])


async def test_direct_use_of_provider_keys_is_found_beside_the_gateways_own_traffic(make_gateway) -> None:
    gateway = make_gateway(clock=lambda: AT)
    key = gateway.key("checkout")
    for n in range(3):
        chat(gateway.openai(key), f"[[sim input={1_000 + n} cached=200 output={80 + n}]]")
        message(gateway.anthropic(key), f"[[sim input={700 + n} cached=100 cache_write=50 output={40 + n}]]")
    with openai.OpenAI(base_url=f"{gateway.sim.url}/v1", api_key="sk-direct-openai", max_retries=0) as direct:
        chat(direct, "[[sim input=5000 output=500]]")
    with anthropic.Anthropic(base_url=gateway.sim.url, api_key="sk-ant-direct", max_retries=0) as direct:
        message(direct, "[[sim input=3000 cache_write=1000 cache_write_1h=400 output=300]]")

    # The provider reports what it served, under the key each request came with.
    served = usage_from_log(gateway.sim.log.records, day=DAY, key_ids=KEY_IDS)
    gateway.sim.admin.dataset.add(served, costs_from_usage(served, PriceBook()))
    gateway.flush()
    ledger = gateway.store.report(ReportQuery(by=("day", "provider", "model"), since=DAY, until=DAY))

    for provider, base_url in (("openai", f"{gateway.sim.url}/v1"), ("anthropic", gateway.sim.url)):
        client = admin_client(provider, base_url=base_url, environ=ADMIN_KEYS)
        report = await fetch_provider_report(client, DAY, DAY)
        result = reconcile(report, ledger_rows_from_report(ledger, provider), PriceBook())

        gateway_row, direct_row = result.rows
        assert (gateway_row.api_key_id, gateway_row.verdict) == (f"key_gateway_{provider}", Verdict.MATCHED)
        # Every token and the cost to the last digit (Anthropic's report does not count requests).
        provider_requests = None if provider == "anthropic" else 3
        assert gateway_row.provider == replace(gateway_row.ledger, requests=provider_requests)
        assert (direct_row.api_key_id, direct_row.verdict) == (f"key_direct_{provider}", Verdict.UNSEEN_BY_GATEWAY)
        direct_cost = sum(
            (c.amount_usd for c in costs_from_usage(served, PriceBook()) if c.api_key_id == f"key_direct_{provider}"),
            Decimal(0),
        )
        assert result.unseen_usd == direct_cost > 0
        assert result.total_provider_usd - result.total_ledger_usd == direct_cost
        [to_import] = rows_to_import(result)
        assert (to_import.api_key_id, to_import.cost_usd) == (f"key_direct_{provider}", direct_cost)
        if provider == "anthropic":  # the provider's parts, added up as the ledger counts input
            assert (to_import.input_tokens, to_import.cache_write_tokens, to_import.cache_write_1h_tokens) == (
                4_000,
                1_000,
                400,
            )
