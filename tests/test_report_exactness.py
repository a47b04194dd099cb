"""The acceptance check: `spendgate report --by project --format json` equals, to the last
decimal, the sum of the list prices of what the fake provider reported.

The expected figure is computed independently of spendgate's pricing code: straight from
the simulator's log of the usage it put on the wire, priced with `genai_prices.calc_price`.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal

import genai_prices

from tests.conftest import Gateway

PROJECTS = ("checkout", "search", "assistant")
OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini")
ANTHROPIC_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-1")


def _list_price(path: str, model: str, usage: dict) -> Decimal:
    if path == "/v1/messages":
        cache_read = usage.get("cache_read_input_tokens") or 0
        cache_write = usage.get("cache_creation_input_tokens") or 0
        one_hour = (usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0
        normalized = genai_prices.Usage(
            input_tokens=usage["input_tokens"] + cache_read + cache_write,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=one_hour,
            output_tokens=usage["output_tokens"],
        )
        provider = "anthropic"
    elif "prompt_tokens" in usage:
        normalized = genai_prices.Usage(
            input_tokens=usage["prompt_tokens"],
            cache_read_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
            output_tokens=usage.get("completion_tokens") or 0,
        )
        provider = "openai"
    else:  # Responses API
        normalized = genai_prices.Usage(
            input_tokens=usage["input_tokens"],
            cache_read_tokens=(usage.get("input_tokens_details") or {}).get("cached_tokens") or 0,
            output_tokens=usage["output_tokens"],
        )
        provider = "openai"
    return genai_prices.calc_price(normalized, model, provider_id=provider).total_price


def _drive(gateway: Gateway, keys: dict[str, str], rng: random.Random) -> None:
    for i in range(90):
        project = rng.choice((*PROJECTS, "none"))
        key = keys[project]
        tokens = rng.randint(10, 5000)
        cached = rng.choice((0, 0, tokens // 2))
        output = rng.randint(1, 800)
        marker = f"project:{project} #{i}"
        stream = rng.random() < 0.5
        kind = rng.choice(("chat", "responses", "embeddings", "messages", "messages"))
        if kind == "messages":
            write = rng.choice((0, 300))
            directive = (
                f"[[sim input={tokens} cached={cached} cache_write={write}"
                f" cache_write_1h={write // 3} output={output}]]"
            )
            client = gateway.anthropic(key)
            args = {"model": rng.choice(ANTHROPIC_MODELS), "max_tokens": 900}
            messages = [{"role": "user", "content": f"{directive} {marker}"}]
            if stream:
                with client.messages.stream(messages=messages, **args) as s:
                    s.get_final_message()
            else:
                client.messages.create(messages=messages, **args)
            continue
        client = gateway.openai(key)
        directive = f"[[sim input={tokens} cached={cached} output={output} reasoning={output // 4}]]"
        model = rng.choice(OPENAI_MODELS)
        if kind == "chat":
            result = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"{directive} {marker}"}], stream=stream
            )
            if stream:
                for _ in result:
                    pass
        elif kind == "responses":
            result = client.responses.create(model=model, input=f"{directive} {marker}", stream=stream)
            if stream:
                for _ in result:
                    pass
        else:
            client.embeddings.create(model="text-embedding-3-small", input=f"[[sim input={tokens}]] {marker}")


def test_report_by_project_equals_sum_of_list_prices(gateway: Gateway) -> None:
    gateway.team("payments")
    gateway.team("growth")
    gateway.project("checkout", team="payments")
    gateway.project("search", team="growth")
    gateway.project("assistant", team="growth")
    keys = {p: gateway.key(f"{p}-key", project=p) for p in PROJECTS}
    keys["none"] = gateway.key("loose-key")

    _drive(gateway, keys, random.Random(20261123))
    gateway.flush()

    expected: dict[str, Decimal] = defaultdict(Decimal)
    for record in gateway.sim.log.records:
        assert record.reported_usage is not None
        project = re.search(r"project:(\w+)", json.dumps(record.body)).group(1)
        owner = "unallocated" if project == "none" else project
        expected[owner] += _list_price(record.path, record.body["model"], record.reported_usage)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spendgate",
            "report",
            "--by",
            "project",
            "--format",
            "json",
            "--db",
            gateway.db_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    got = {row["project"]: Decimal(row["cost_usd"]) for row in report["rows"]}
    assert got == dict(expected)
    assert Decimal(report["total_cost_usd"]) == sum(expected.values())
    assert sum(row["requests"] for row in report["rows"]) == len(gateway.sim.log.records) == 90
