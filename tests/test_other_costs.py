"""`spendgate costs add|list` through click's runner, on both backends: a non-token cost is a
manual event, client-reported, counted by reports and budgets (a running gateway's in-process or
Redis counters too); and one team's proxied, ingested, OTLP and manual spend add up in one
report to the last digit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spendgate.budgets.model import Budget, Scope
from spendgate.budgets.windows import window_for
from spendgate.cli.main import main
from spendgate.reports.spec import ReportQuery
from tests.conftest import Gateway, open_test_store
from tests.test_ingest_file import db_url  # noqa: F401  (a fixture: a ledger on each backend)


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_a_cost_is_a_manual_event_in_reports_and_budget_windows(db_url: str) -> None:  # noqa: F811
    added = run(
        "costs", "add", "--amount", "1250.00", "--team", "payments", "--period", "2026-11",
        "--category", "compute", "--description", "GPU box", "--db", db_url, "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    outcome = json.loads(added.output)
    assert (outcome["amount_usd"], outcome["team"], outcome["project"], outcome["stored"]) == (
        "1250.00",
        "payments",
        None,
        True,
    )
    first = ["costs", "add", "--amount", "12.345", "--scope", "project:checkout", "--period", "2026-11-15"]
    again = [*first, "--category", "search", "--id", "inv-7", "--db", db_url]
    assert "recorded $12.345 of search" in run(*again).output
    assert "already recorded" in run(*again).output  # the same --id: nothing changes

    listed = json.loads(run("costs", "list", "--db", db_url, "--json").output)
    assert [(c["id"], c["amount_usd"], c["category"]) for c in listed] == [
        ("inv-7", "12.345", "search"),
        (outcome["cost_id"], "1250", "compute"),
    ]
    assert listed[1]["description"] == "GPU box" and listed[1]["period_start"] == "2026-11-01T00:00:00.000000Z"
    store = open_test_store(db_url)
    try:
        events = store.list_events(10)
        assert {(e["source"], e["client_reported"], e["provider"]) for e in events} == {("manual", True, "manual")}
        report = store.report(ReportQuery(by=("source", "team", "model")))
        assert [(r.dims["model"], r.cost_usd) for r in report.rows] == [
            ("compute", Decimal("1250.00")),
            ("search", Decimal("12.345")),
        ]
        november = window_for("month", "UTC", datetime(2026, 11, 20, tzinfo=UTC))
        assert store.spend(Scope.parse("team:payments"), november.start, november.end) == Decimal("1262.345")
        assert store.spend(Scope.parse("project:checkout"), november.start, november.end) == Decimal("12.345")
    finally:
        store.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--amount", "-1", "--team", "payments", "--period", "2026-11"], "above 0"),
        (["--amount", "0.1", "--amount", "1e9", "--team", "payments", "--period", "2026-11"], "at most"),
        (["--amount", "1", "--team", "payments", "--period", "November"], "bad period"),
        (["--amount", "1", "--team", "nope", "--period", "2026-11"], "unknown team 'nope'"),
        (["--amount", "1", "--scope", "key:x", "--period", "2026-11"], "bad scope"),
        (["--amount", "1", "--team", "payments", "--project", "checkout", "--period", "2026-11"], "one owner"),
    ],
)
def test_bad_costs_are_refused(db_url: str, args: list[str], message: str) -> None:  # noqa: F811
    result = run("costs", "add", *args, "--category", "tools", "--db", db_url)
    assert result.exit_code == 2 and message in result.output
    assert run("costs", "list", "--db", db_url, "--json").output.strip() == "[]"


def _team_budget_blocks_after_a_cost(gateway: Gateway, env: dict[str, str] | None = None) -> None:
    gateway.team("payments")
    gateway.project("checkout", "payments")
    key = gateway.key("k", project="checkout")
    gateway.store.create_budget(Budget(name="p", scope=Scope.parse("team:payments"), limit_usd=Decimal("5")))
    gateway.wait_for_directory()
    client = gateway.openai(key)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    month = datetime.now(UTC).strftime("%Y-%m")
    args = ["costs", "add", "--amount", "5", "--team", "payments", "--period", month, "--category", "tools"]
    assert run(*args, "--db", gateway.db_url, env=env).exit_code == 0
    gateway.wait_for_directory()
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402
    assert Decimal(5) < Decimal(refused.value.body["budget"]["spent_usd"]) < Decimal("5.01")


def test_a_running_gateway_counts_a_cost_against_its_budgets(gateway: Gateway) -> None:
    _team_budget_blocks_after_a_cost(gateway)


def test_a_cost_counts_in_shared_redis_counters(make_gateway, redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    _team_budget_blocks_after_a_cost(make_gateway(redis_url=redis_url), env={"SPENDGATE_REDIS_URL": redis_url})


def test_proxied_ingested_otlp_batch_and_manual_spend_add_up_for_one_team(gateway: Gateway, tmp_path) -> None:
    gateway.team("payments")
    gateway.project("checkout", "payments")
    key = gateway.key("k", project="checkout")
    gateway.openai(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    gateway.anthropic(key).messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    records = {
        "records": [
            {"id": f"u{i}", "provider": "openai", "model": "gpt-4o", "input_tokens": 1234 + i, "output_tokens": 77}
            for i in range(3)
        ]
    }
    assert (
        httpx.post(f"{gateway.url}/v1/usage", json=records, headers={"authorization": f"Bearer {key}"}).json()[
            "accepted"
        ]
        == 3
    )
    log = tmp_path / "u.jsonl"
    log.write_text(
        json.dumps(
            {
                "id": "f1",
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": 999,
                "output_tokens": 11,
            }
        )
        + "\n"
    )
    assert json.loads(run("ingest", str(log), "--key", "k", "--db", gateway.db_url, "--json").output)["accepted"] == 1
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{gateway.url}/v1/traces", headers={"x-api-key": key}))
    )
    with provider.get_tracer("t").start_as_current_span("chat") as span:
        span.set_attributes(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 4321,
                "gen_ai.usage.output_tokens": 12,
            }
        )
    provider.shutdown()
    # A batch through the gateway (Anthropic's Message Batches), its results fetched twice.
    batches = gateway.anthropic(key).messages.batches
    batch = batches.create(
        requests=[
            {
                "custom_id": "nightly-1",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 100,
                    "messages": [{"role": "user", "content": "[[sim input=1000 output=100]]"}],
                },
            }
        ]
    )
    assert batches.retrieve(batch.id).processing_status == "ended"
    for _ in range(2):
        assert [r.result.type for r in batches.results(batch.id)] == ["succeeded"]
    month = datetime.now(UTC).strftime("%Y-%m")
    run(
        "costs",
        "add",
        "--amount",
        "0.000123",
        "--team",
        "payments",
        "--period",
        month,
        "--category",
        "tools",
        "--db",
        gateway.db_url,
    )

    events = gateway.events()
    by_source: dict[str, Decimal] = {}
    for event in events:
        by_source[event["source"]] = by_source.get(event["source"], Decimal(0)) + Decimal(event["cost_usd"])
    assert sorted(by_source) == ["batch", "ingest", "manual", "otlp", "proxy"]
    report = gateway.report("team", "source")
    rows = {r["source"]: Decimal(r["cost_usd"]) for r in report["rows"] if r["team"] == "payments"}
    assert rows == by_source
    assert Decimal(report["total_cost_usd"]) == sum(rows.values()) == sum(by_source.values())
    assert len(events) == 2 + 3 + 1 + 1 + 1 + 1
    assert all(e["team"] == "payments" for e in events)
