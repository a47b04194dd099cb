"""`spendgate ingest FILE` through click's runner, on both backends: JSON lines and CSV, the same
records as POST /v1/usage, resumable (a growing log goes on from where it stopped) and
idempotent (the same file twice, or through the API too, is stored once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from spendgate import management
from spendgate.budgets.model import Budget, Scope
from spendgate.cli.main import main
from spendgate.pricing import PriceBook
from spendgate.reports.spec import ReportQuery
from spendgate.usage import Usage
from tests.conftest import Gateway, open_test_store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = (
        request.getfixturevalue("postgres_db")() if request.param == "postgresql" else f"sqlite:///{tmp_path / 'l.db'}"
    )
    store = open_test_store(url)
    management.create_team(store, "payments", "CC-1")
    management.create_project(store, "checkout", "payments")
    management.create_project(store, "refunds", "payments")
    management.create_key(store, "batch", project="checkout", lock=True)
    store.close()
    yield url


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def write_jsonl(path: Path, records: list[Any], mode: str = "w") -> None:
    with path.open(mode) as f:
        for item in records:
            f.write((item if isinstance(item, str) else json.dumps(item)) + "\n")


def rec(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"r-{i}",
        "ts": f"2025-09-0{1 + i % 9}T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000 + i,
        "output_tokens": 100,
        "project": "refunds",
        **fields,
    }


def ledger(db_url: str) -> Any:
    return open_test_store(db_url)


def test_a_jsonl_backfill_is_priced_resumable_and_idempotent(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    write_jsonl(log, [rec(i) for i in range(30)] + ["{broken", json.dumps(rec(99, input_tokens=-1))])
    first = run("ingest", str(log), "--db", db_url, "--batch-size", "7", "--json")
    assert first.exit_code == 0, first.output
    outcome = json.loads(first.output)
    assert (outcome["accepted"], outcome["duplicates"], outcome["rejected"]) == (30, 0, 2)
    assert [r["line"] for r in outcome["rejections"]] == [31, 32]
    assert "not valid JSON" in outcome["rejections"][0]["error"]
    assert "input_tokens" in outcome["rejections"][1]["error"]

    # Run again: it resumes at the end and stores nothing; the log grows: only the new lines.
    again = json.loads(run("ingest", str(log), "--db", db_url, "--json").output)
    assert (again["accepted"], again["duplicates"], again["resumed_after"]) == (0, 0, 32)
    write_jsonl(log, [rec(i) for i in range(30, 40)], mode="a")
    grown = json.loads(run("ingest", str(log), "--db", db_url, "--json").output)
    assert (grown["accepted"], grown["duplicates"], grown["rejected"]) == (10, 0, 0)
    # From the start: every record is a duplicate.
    restart = json.loads(run("ingest", str(log), "--db", db_url, "--restart", "--json").output)
    assert (restart["accepted"], restart["duplicates"], restart["rejected"]) == (0, 40, 2)

    store = ledger(db_url)
    try:
        events = store.list_events(1000)
        assert len(events) == 40 and {e["source"] for e in events} == {"ingest"}
        one = next(e for e in events if e["external_id"] == "r-3")
        priced = PriceBook().price(
            "openai", "gpt-4o-mini", Usage(input_tokens=1003, output_tokens=100), datetime(2025, 9, 4, 10, tzinfo=UTC)
        )
        assert priced is not None and Decimal(one["cost_usd"]) == priced.cost
        assert (one["project"], one["team"], one["key"], one["environment"]) == ("refunds", "payments", None, None)
        by_source = store.report(ReportQuery(by=("source", "day")))
        assert by_source.total_requests == 40
        assert by_source == store.report(ReportQuery(by=("source", "day")), source="events")
    finally:
        store.close()


def test_csv_with_tags_and_a_keys_lock(db_url: str, tmp_path: Path) -> None:
    sheet = tmp_path / "usage.csv"
    sheet.write_text(
        "id,ts,provider,model,input_tokens,cached_input_tokens,output_tokens,project,customer,tag:agent,cost_usd\n"
        "c-1,2025-09-01T00:00:00Z,openai,gpt-4o,2000,500,100,refunds,acme,support-bot,\n"
        'c-2,2025-09-02,anthropic,claude-haiku-4-5,100,0,10,,"Globex, Inc.",,0.25\n'
        "c-3,2025-09-02,openai,gpt-4o,x,0,10,,,,\n"
    )
    result = run("ingest", str(sheet), "--db", db_url, "--key", "batch", "--json")
    outcome = json.loads(result.output)
    assert (outcome["accepted"], outcome["rejected"]) == (2, 1)
    assert outcome["rejections"][0]["line"] == 4 and "input_tokens" in outcome["rejections"][0]["error"]
    store = ledger(db_url)
    try:
        events = {e["external_id"]: e for e in store.list_events()}
        first, second = events["c-1"], events["c-2"]
        assert (first["project"], first["key"], first["customer"], first["tags"]) == (
            "checkout",  # the key is locked to checkout, whatever the record says
            "batch",
            "acme",
            {"agent": "support-bot"},
        )
        assert first["cached_input_tokens"] == 500
        assert (second["customer"], second["cost_usd"], second["client_reported"]) == ("Globex, Inc.", "0.25", True)
    finally:
        store.close()
    assert run("ingest", str(sheet), "--db", db_url, "--key", "nobody").exit_code == 2


def test_a_file_and_the_api_share_ids_and_a_running_gateway_counts_the_file(make_gateway, tmp_path: Path) -> None:
    gateway: Gateway = make_gateway()
    gateway.team("payments")
    gateway.project("checkout", "payments")
    secret = gateway.key("batch", project="checkout")
    gateway.store.create_budget(Budget(name="p", scope=Scope.parse("team:payments"), limit_usd=Decimal("1")))
    gateway.wait_for_directory()
    client = gateway.openai(secret)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    now = datetime.now(UTC).isoformat()
    api = httpx.post(
        f"{gateway.url}/v1/usage",
        json={"records": [rec(1, ts=now, project=None)]},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert api.json()["accepted"] == 1
    gateway.flush()
    log = tmp_path / "now.jsonl"
    write_jsonl(log, [rec(1, ts=now, project=None), rec(2, ts=now, project=None, cost_usd="3")])
    outcome = json.loads(run("ingest", str(log), "--db", gateway.db_url, "--key", "batch", "--json").output)
    assert (outcome["accepted"], outcome["duplicates"]) == (1, 1)  # r-1 came through the API already
    # The running gateway's in-process counters reload from the ledger: its budget is spent.
    gateway.wait_for_directory()
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402
    assert Decimal(refused.value.body["budget"]["spent_usd"]) > Decimal(3)


def test_the_progress_bar_is_drawn_on_stderr(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "u.jsonl"
    write_jsonl(log, [rec(i) for i in range(5)])
    result = CliRunner().invoke(main, ["ingest", str(log), "--db", db_url, "--progress"])
    assert result.exit_code == 0
    assert "ingesting" in result.stderr and "5 records" in result.stderr
    assert "5 record(s) stored" in result.stdout
