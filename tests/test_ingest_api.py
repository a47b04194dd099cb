"""POST /v1/usage through a real HTTP client (httpx) against the running gateway, on both
backends: priced and attributed as proxied requests are, idempotent by the client's id (also
across a restart), partial success with reasons, budgets counting what was ingested."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from spendgate.budgets.model import Budget, Scope
from spendgate.pricing import PriceBook
from spendgate.usage import Usage
from tests.conftest import Gateway


def post(gateway: Gateway, key: str, body: Any, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    if isinstance(body, (bytes, str)):
        return httpx.post(f"{gateway.url}/v1/usage", content=body, headers=headers, timeout=30, **kwargs)
    return httpx.post(f"{gateway.url}/v1/usage", json=body, headers=headers, timeout=30, **kwargs)


def record(record_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": record_id,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 200,
        **fields,
    }


def _setup(gateway: Gateway) -> dict[str, str]:
    gateway.team("payments", cost_center="CC-1")
    gateway.team("search")
    gateway.project("checkout", "payments")
    gateway.project("refunds", "payments")
    gateway.project("ranking", "search")
    return {
        "default": gateway.key("batch-jobs", project="checkout", environment="staging"),
        "locked": gateway.key("locked", project="checkout", lock=True),
        "team": gateway.key("team-key", team="payments"),
    }


def test_records_are_priced_attributed_and_stored_once(gateway: Gateway) -> None:
    keys = _setup(gateway)
    past = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
    batch = {
        "records": [
            record("r-1", ts="2025-06-15T12:00:00Z", cached_input_tokens=400, feature="nightly", customer="acme"),
            record("r-2", project="refunds", tags={"agent": "support-bot"}, trace_id="t-9"),
            record("r-3", model="claude-haiku-4-5", provider="anthropic", cost_usd="0.0123"),
            record("r-4", project="ranking"),  # another team's project: not this key's to name
            record("r-5", project="nope"),
            record("r-6", input_tokens=10**12),  # beyond any real request
            record("r-7", cost_usd=0.5),  # a float is not exact money
            {"provider": "openai", "model": "gpt-4o"},  # no id
            record("r-1"),  # the same id again in the batch
        ]
    }
    answer = post(gateway, keys["default"], batch)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["duplicates"]) == (3, 1)
    reasons = {item["index"]: item["error"] for item in body["rejected"]}
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert "may not attribute spend to project 'ranking'" in reasons[3]
    assert "unknown project 'nope'" in reasons[4] and "ranking" not in reasons[4]
    assert "input_tokens" in reasons[5] and "out of range" in reasons[5]
    assert "float" in reasons[6]
    assert "'id' is required" in reasons[7]

    # The same batch again (a client retrying after a lost answer) changes nothing.
    again = post(gateway, keys["default"], batch).json()
    assert (again["accepted"], again["duplicates"]) == (0, 4)
    events = {e["external_id"]: e for e in gateway.events()}
    assert sorted(events) == ["r-1", "r-2", "r-3"]

    first = events["r-1"]
    expected = PriceBook().price(
        "openai", "gpt-4o-mini", Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=200), past
    )
    assert expected is not None
    assert Decimal(first["cost_usd"]) == expected.cost  # priced at its own instant
    assert first["ts"] == "2025-06-15T12:00:00.000000Z"
    assert (first["source"], first["client_reported"], first["key"]) == ("ingest", False, "batch-jobs")
    assert (first["project"], first["team"], first["cost_center"]) == ("checkout", "payments", "CC-1")
    assert (first["environment"], first["feature"], first["customer"]) == ("staging", "nightly", "acme")
    assert first["cached_input_tokens"] == 400 and first["endpoint"] == "/v1/usage"
    second = events["r-2"]
    assert (second["project"], second["tags"], second["trace_id"]) == ("refunds", {"agent": "support-bot"}, "t-9")
    third = events["r-3"]
    assert (third["cost_usd"], third["client_reported"], third["price_source"]) == ("0.0123", True, "client-reported")

    report = gateway.report("source")
    assert [(r["source"], r["requests"]) for r in report["rows"]] == [("ingest", 3)]
    assert Decimal(report["total_cost_usd"]) == sum(Decimal(e["cost_usd"]) for e in events.values())


def test_the_keys_lock_and_scope_apply_as_to_proxied_calls(gateway: Gateway) -> None:
    keys = _setup(gateway)
    assert post(gateway, keys["locked"], {"records": [record("a", project="refunds")]}).json()["accepted"] == 1
    answer = post(gateway, keys["team"], {"records": [record("b", project="refunds"), record("c")]}).json()
    assert answer["accepted"] == 2
    owners = {e["external_id"]: (e["project"], e["team"], e["key"]) for e in gateway.events()}
    assert owners == {
        "a": ("checkout", "payments", "locked"),  # locked: whatever the record says
        "b": ("refunds", "payments", "team-key"),
        "c": ("unallocated", None, "team-key"),  # no project named, none by default
    }
    # Ids are the client's per key: another key's "a" is another record.
    assert post(gateway, keys["team"], {"records": [record("a", project="refunds")]}).json()["accepted"] == 1


def test_the_same_batch_after_a_restart_is_still_a_duplicate(make_gateway) -> None:
    first = make_gateway()
    keys = _setup(first)
    batch = {"records": [record(f"r-{i}") for i in range(50)]}
    assert post(first, keys["default"], batch).json()["accepted"] == 50
    first.flush()
    second = make_gateway(db=first.db_url)
    answer = post(second, keys["default"], batch).json()
    assert (answer["accepted"], answer["duplicates"]) == (0, 50)
    assert len(second.events()) == 50


def test_errors_are_in_openais_shape_and_bodies_are_bounded(make_gateway) -> None:
    gateway = make_gateway(max_body_bytes=4096)
    keys = _setup(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sg-unknown", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.post("/usage", body={"records": []}, cast_to=object)
    client.close()
    bad = post(gateway, keys["default"], b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert post(gateway, keys["default"], {"rows": []}).status_code == 400
    big = post(gateway, keys["default"], {"records": [record(f"r-{i}") for i in range(100)]})
    assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"
    # gzip is read, and a small body that inflates past the limit is a 413, not a memory bomb.
    small = gzip.compress(b'{"records": [%s]}' % b",".join([b'{"id": "g", "provider": "openai", "model": "gpt-4o"}']))
    assert post(gateway, keys["default"], small, headers={"content-encoding": "gzip"}).json()["accepted"] == 1
    bomb = gzip.compress(b'{"records": [], "pad": "' + b" " * 100_000 + b'"}')
    assert len(bomb) < 4096
    assert post(gateway, keys["default"], bomb, headers={"content-encoding": "gzip"}).status_code == 413
    assert post(gateway, keys["default"], small, headers={"content-encoding": "br"}).status_code == 400
    assert (
        httpx.get(f"{gateway.url}/v1/usage", headers={"authorization": f"Bearer {keys['default']}"}).status_code == 405
    )
    assert len(gateway.events()) == 1


def _budget_blocks_proxied_requests_after_ingestion(gateway: Gateway) -> None:
    keys = _setup(gateway)
    gateway.store.create_budget(
        Budget(name="payments-month", scope=Scope.parse("team:payments"), limit_usd=Decimal("1"))
    )
    gateway.wait_for_directory()
    client = gateway.openai(keys["default"])
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=3)).isoformat()
    # A backfill into last month does not touch this month's budget ...
    assert (
        post(gateway, keys["default"], {"records": [record("old", ts=last_month, cost_usd="5")]}).json()["accepted"]
        == 1
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    # ... spend ingested for now does, once, however often it is sent, and cannot be refused.
    for _ in range(2):
        answer = post(gateway, keys["default"], {"records": [record("now", cost_usd="2")]}).json()
    assert answer["duplicates"] == 1
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402
    spent = Decimal(refused.value.body["budget"]["spent_usd"])
    assert Decimal(2) < spent < Decimal("2.01")  # the 2 ingested once, plus two small requests


def test_ingested_spend_counts_against_budgets(gateway: Gateway) -> None:
    _budget_blocks_proxied_requests_after_ingestion(gateway)


def test_ingested_spend_counts_against_budgets_in_redis(make_gateway, redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    _budget_blocks_proxied_requests_after_ingestion(make_gateway(redis_url=redis_url))


def test_too_many_batches_at_once_is_a_429_with_retry_after(gateway: Gateway) -> None:
    keys = _setup(gateway)
    gateway.app.usage_api.max_inflight = 0  # as if every slot were taken
    busy = post(gateway, keys["default"], {"records": [record("x")]})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["type"] == "rate_limit_exceeded"
    gateway.app.traces_api.max_inflight = 0
    traces = httpx.post(
        f"{gateway.url}/v1/traces",
        json={"resourceSpans": []},
        headers={"authorization": f"Bearer {keys['default']}"},
    )
    assert traces.status_code == 429 and traces.headers["retry-after"] == "1" and traces.json()["code"] == 8
    assert gateway.events() == []


def test_a_record_older_than_the_retention_horizon_is_rejected_not_called_a_duplicate(gateway: Gateway) -> None:
    keys = _setup(gateway)
    gateway.store.prune(datetime(2025, 1, 1, tzinfo=UTC))
    answer = post(gateway, keys["default"], {"records": [record("old", ts="2024-12-31T23:00:00Z"), record("new")]})
    body = answer.json()
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert "retention horizon" in body["rejected"][0]["error"]


def test_a_record_the_ledger_refuses_is_rejected_alone(gateway: Gateway) -> None:
    keys = _setup(gateway)
    store = gateway.app.writer.store
    real = store.append_new

    def refusing(events):  # a value the database cannot take, as a driver would refuse it
        if any(e.external_id == "poison" for e in events):
            raise ValueError("a value this column cannot take (fault injected by the test)")
        return real(events)

    store.append_new = refusing
    try:
        body = post(
            gateway, keys["default"], {"records": [record("a"), record("poison"), record("b", customer="x\u0000y")]}
        ).json()
    finally:
        del store.append_new
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    errors = {item["index"]: item["error"] for item in body["rejected"]}
    assert "the ledger refused it (ValueError" in errors[1] and "NUL" in errors[2]
    assert [e["external_id"] for e in gateway.events()] == ["a"]
    assert gateway.app.writer.dead_letter_count == 1  # set aside, as any event the ledger refuses
