"""Batch APIs through the gateway with the official SDKs: OpenAI /v1/batches with /v1/files,
Anthropic /v1/messages/batches; results recorded at the batch price for the batch's creator,
once however often they are fetched."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import anthropic
import httpx
import openai
import orjson
import pytest

from spendgate.attribution import Attribution
from spendgate.batches import JSONLines, anthropic_result, batch_event_id, openai_result, result_event
from spendgate.pricing import PriceBook
from tests.conftest import UPSTREAM_OPENAI_KEY, Gateway

MTOK = Decimal(1_000_000)
# Batch prices are half the standard ones: gpt-4o-mini $0.075 / $0.30, claude-haiku-4-5 $0.50 / $2.50 per MTok.
MINI_BATCH_IN, MINI_BATCH_OUT = Decimal("0.075"), Decimal("0.3")
HAIKU_BATCH_IN, HAIKU_BATCH_OUT = Decimal("0.5"), Decimal("2.5")


@pytest.fixture
def keys(gateway: Gateway) -> tuple[str, str]:
    gateway.team("data")
    gateway.team("ops")
    gateway.project("nightly", team="data")
    gateway.project("console", team="ops")
    creator = gateway.key("nightly-jobs", project="nightly")
    fetcher = gateway.key("ops-console", project="console")
    return creator, fetcher


def _input_file(*prompts: str) -> bytes:
    lines = [
        {
            "custom_id": f"req-{number}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]},
        }
        for number, prompt in enumerate(prompts)
    ]
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def test_openai_batch_results_are_the_creators_at_the_batch_price_once(gateway: Gateway, keys) -> None:
    creator_key, fetcher_key = keys
    creator = gateway.openai(creator_key)
    uploaded = creator.files.create(
        file=(
            "batch.jsonl",
            _input_file("[[sim input=1000 output=200]]", "[[sim input=500 output=100]]", "[[sim status=400]]"),
        ),
        purpose="batch",
    )
    assert uploaded.purpose == "batch"
    batch = creator.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "validating"
    done = creator.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id
    # Nothing is recorded until results are fetched.
    assert gateway.events() == []
    # Fetched by another key: still the creator's spend.
    fetcher = gateway.openai(fetcher_key)
    output = fetcher.files.content(done.output_file_id).text
    assert output.count("\n") == 2
    events = gateway.events()
    assert len(events) == 2
    for event in events:
        assert (event["project"], event["team"], event["key"]) == ("nightly", "data", "nightly-jobs")
        assert (event["provider"], event["endpoint"], event["status"]) == ("openai", "/v1/batches", "ok")
        assert "batch tier" in event["price_source"]
    costs = sorted(Decimal(e["cost_usd"]) for e in events)
    assert costs == [
        (500 * MINI_BATCH_IN + 100 * MINI_BATCH_OUT) / MTOK,
        (1000 * MINI_BATCH_IN + 200 * MINI_BATCH_OUT) / MTOK,
    ]
    # Fetched again (and the error file too): nothing more is counted.
    creator.files.content(done.output_file_id).read()
    errors = creator.files.content(done.error_file_id).text
    assert '"status_code":400' in errors
    assert len(gateway.events()) == 2
    [row] = gateway.report("project")["rows"]
    assert (row["project"], row["cost_usd"], row["requests"]) == ("nightly", str(sum(costs)), 2)
    assert (row["input_tokens"], row["output_tokens"]) == (1500, 300)
    # The provider never saw a gateway key.
    for record in gateway.sim.log.records:
        assert record.headers["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"
    # The other file and batch routes pass through.
    assert [f.id for f in creator.files.list()]
    assert creator.batches.list().data[0].id == batch.id
    assert creator.files.retrieve(uploaded.id).filename == "batch.jsonl"
    assert creator.files.delete(uploaded.id).deleted is True


def test_anthropic_batch_results_through_the_sdk(gateway: Gateway, keys) -> None:
    creator_key, fetcher_key = keys
    creator = gateway.anthropic(creator_key)
    batch = creator.messages.batches.create(
        requests=[
            {
                "custom_id": "a",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 100,
                    "messages": [{"role": "user", "content": "[[sim input=1000 output=100]]"}],
                },
            },
            {
                "custom_id": "b",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 100,
                    "messages": [{"role": "user", "content": "[[sim status=500]]"}],
                },
            },
        ]
    )
    assert batch.processing_status == "in_progress"
    fetcher = gateway.anthropic(fetcher_key)
    ended = fetcher.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    # The results URL leads back to the gateway, never to the provider with the gateway key.
    assert ended.results_url == f"{gateway.url}/v1/messages/batches/{batch.id}/results"
    results = {r.custom_id: r.result.type for r in fetcher.messages.batches.results(batch.id)}
    assert results == {"a": "succeeded", "b": "errored"}
    list(creator.messages.batches.results(batch.id))  # twice: counted once
    [event] = gateway.events()
    assert (event["project"], event["key"], event["provider"]) == ("nightly", "nightly-jobs", "anthropic")
    assert event["endpoint"] == "/v1/messages/batches"
    assert Decimal(event["cost_usd"]) == (1000 * HAIKU_BATCH_IN + 100 * HAIKU_BATCH_OUT) / MTOK
    assert [b.id for b in creator.messages.batches.list()] == [batch.id]


async def test_async_clients(gateway: Gateway, keys) -> None:
    creator_key, _ = keys
    client = gateway.async_anthropic(creator_key)
    try:
        batch = await client.messages.batches.create(
            requests=[
                {
                    "custom_id": "x",
                    "params": {
                        "model": "claude-haiku-4-5",
                        "max_tokens": 10,
                        "messages": [{"role": "user", "content": "[[sim input=10 output=5]]"}],
                    },
                }
            ]
        )
        await client.messages.batches.retrieve(batch.id)
        results = [r async for r in await client.messages.batches.results(batch.id)]
    finally:
        await client.close()
    assert [r.custom_id for r in results] == ["x"]
    [event] = await asyncio.to_thread(gateway.events)
    assert event["input_tokens"] == 10


def test_a_batch_not_created_through_the_gateway_passes_through_unrecorded(gateway: Gateway, keys) -> None:
    creator_key, _ = keys
    direct = httpx.post(
        f"{gateway.sim.url}/v1/messages/batches",
        headers={"x-api-key": "sk-direct"},
        json={
            "requests": [{"custom_id": "z", "params": {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}}]
        },
    ).json()
    client = gateway.anthropic(creator_key)
    client.messages.batches.retrieve(direct["id"])
    assert [r.custom_id for r in client.messages.batches.results(direct["id"])] == ["z"]
    assert gateway.events() == []


def test_refusals_and_upstream_errors_in_each_shape(gateway: Gateway, keys) -> None:
    with pytest.raises(openai.AuthenticationError):
        gateway.openai("sg-nope").batches.list()
    with pytest.raises(anthropic.AuthenticationError):
        gateway.anthropic("sg-nope").messages.batches.list()
    creator_key, _ = keys
    with pytest.raises(openai.NotFoundError):
        gateway.openai(creator_key).batches.retrieve("batch_missing")
    with pytest.raises(anthropic.NotFoundError):
        gateway.anthropic(creator_key).messages.batches.retrieve("msgbatch_missing")
    with pytest.raises(openai.BadRequestError, match="unknown project"):
        gateway.openai(creator_key).batches.create(
            input_file_id="file-x",
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_headers={"x-spendgate-project": "nope"},
        )
    assert not any(r.path == "/v1/batches" and r.method == "POST" for r in gateway.sim.log.records)


# --- pure parts ------------------------------------------------------------------------------
def test_result_lines_and_ids() -> None:
    ok = {
        "id": "batch_req_1",
        "custom_id": "c1",
        "response": {
            "status_code": 200,
            "request_id": "r",
            "body": {"model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
        },
        "error": None,
    }
    result = openai_result(ok)
    assert result is not None and result.usage.input_tokens == 3 and result.request_id == "r"
    assert openai_result({**ok, "error": {"code": "x"}}) is None
    assert openai_result({**ok, "response": {**ok["response"], "status_code": 500}}) is None
    assert openai_result({**ok, "custom_id": 7}) is None
    assert anthropic_result({"custom_id": "c", "result": {"type": "expired"}}) is None
    at = datetime(2026, 11, 15, tzinfo=UTC)  # genai-prices lists batch prices from 2026
    assert batch_event_id("openai", "b", "c1", at) == batch_event_id("openai", "b", "c1", at)
    assert batch_event_id("openai", "b", "c1", at) != batch_event_id("openai", "b", "c2", at)
    assert len(batch_event_id("openai", "b", "c1", at)) == 32
    event = result_event(
        anthropic_result(
            {
                "custom_id": "c",
                "result": {
                    "type": "succeeded",
                    "message": {"model": "claude-haiku-4-5", "usage": {"input_tokens": 1000, "output_tokens": 100}},
                },
            }
        ),
        provider="anthropic",
        batch_id="msgbatch_1",
        created_at=at,
        endpoint="/v1/messages/batches",
        owner=Attribution("p", "t", None, "production", "k"),
        prices=PriceBook(),
    )
    assert (event.source, event.service_tier, event.ts, event.project) == ("batch", "batch", at, "p")
    assert event.id == batch_event_id("anthropic", "msgbatch_1", "c", at)
    assert event.cost_usd == (1000 * HAIKU_BATCH_IN + 100 * HAIKU_BATCH_OUT) / MTOK


def test_json_lines_across_chunks_and_bounded() -> None:
    lines = JSONLines(max_line_bytes=64)
    out = lines.feed(b'{"a": 1}\n{"b"') + lines.feed(b": 2}\n" + b"x" * 100) + lines.feed(b"y" * 100 + b'\n{"c": 3}')
    out += lines.close()
    assert out == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert lines.skipped == 1


def test_a_batch_is_held_to_its_creators_policies_and_spent_budgets(gateway: Gateway, keys) -> None:
    from spendgate.budgets.model import Budget, Policy, Scope

    creator_key, _ = keys
    gateway.store.create_policy(Policy("production", ("feature",)))
    gateway.wait_for_directory()
    requests = [
        {
            "custom_id": "a",
            "params": {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        }
    ]
    client = gateway.anthropic(creator_key)
    with pytest.raises(anthropic.BadRequestError, match="lacks feature"):
        client.messages.batches.create(requests=requests)
    tagged = gateway.anthropic(creator_key, default_headers={"x-spendgate-feature": "nightly"})
    tagged.messages.batches.create(requests=requests)
    # Once a blocking budget of the creator is spent, no batch starts.
    gateway.store.create_budget(Budget(name="data-cap", scope=Scope.parse("team:data"), limit_usd=Decimal("0.00005")))
    gateway.wait_for_directory()
    tagged.messages.create(
        model="claude-haiku-4-5", max_tokens=1, messages=[{"role": "user", "content": "[[sim input=100 output=1]]"}]
    )
    with pytest.raises(anthropic.APIStatusError) as refused:
        tagged.messages.batches.create(requests=requests)
    assert refused.value.status_code == 402
    creates = [r for r in gateway.sim.log.records if r.path == "/v1/messages/batches" and r.method == "POST"]
    assert len(creates) == 1


def test_fetched_batch_results_count_against_live_budgets(gateway: Gateway, keys) -> None:
    """Batch spend reaches the running gateway's budget counters when its results pass, as
    ingested spend does: the creator's next request over the budget is refused."""
    from spendgate.budgets.model import Budget, Scope

    creator_key, _ = keys
    gateway.store.create_budget(
        Budget(name="nightly", scope=Scope.parse("project:nightly"), limit_usd=Decimal("0.0004"))
    )
    gateway.wait_for_directory()
    creator = gateway.anthropic(creator_key)
    batch = creator.messages.batches.create(
        requests=[
            {
                "custom_id": "big",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 100,
                    "messages": [{"role": "user", "content": "[[sim input=1000 output=100]]"}],
                },
            }
        ]
    )
    creator.messages.batches.retrieve(batch.id)
    list(creator.messages.batches.results(batch.id))
    [event] = gateway.events()
    assert Decimal(event["cost_usd"]) > Decimal("0.0004")  # the batch alone spent the budget
    with pytest.raises(anthropic.APIStatusError) as refused:
        creator.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402
    assert Decimal(refused.value.body["error"]["budget"]["spent_usd"]) == Decimal(event["cost_usd"])
