"""The `spendgate` command, driven through click's CliRunner on a real SQLite file."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spendgate.cli import main
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.store.dialects.sqlite import SQLiteStore

CONTRACT_EVENT_FIELDS = {
    "id",
    "ts",
    "provider",
    "model",
    "project",
    "team",
    "feature",
    "environment",
    "customer",
    "key",
    "trace_id",
    "tags",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "status",
    "estimated",
}
MILLION = Decimal(1_000_000)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # No stray spendgate.toml or SPENDGATE_* variable may change what the commands do.
    monkeypatch.chdir(tmp_path)
    for name in ("SPENDGATE_DB", "SPENDGATE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return f"sqlite:///{tmp_path}/x.db"


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--db", db], catch_exceptions=False)


def ok(db: str, *args: str) -> Result:
    result = run(db, *args)
    assert result.exit_code == 0, result.output
    return result


def db_path(db: str) -> str:
    return db.removeprefix("sqlite:///")


# --- teams and projects -----------------------------------------------------------------
def test_teams_create_and_list(db: str) -> None:
    assert "payments" in ok(db, "teams", "create", "payments", "--cost-center", "CC-42").stdout
    created = json.loads(ok(db, "teams", "create", "cx", "--json").stdout)
    assert created == {"name": "cx", "cost_center": None, "reference": None}

    listed = json.loads(ok(db, "teams", "list", "--json").stdout)
    assert listed == [
        {"name": "cx", "cost_center": None, "reference": None},
        {"name": "payments", "cost_center": "CC-42", "reference": None},
    ]
    table = ok(db, "teams", "list").stdout
    assert "payments" in table
    assert "CC-42" in table
    assert "cx" in table


def test_team_duplicate_and_bad_name(db: str) -> None:
    ok(db, "teams", "create", "payments")
    duplicate = run(db, "teams", "create", "payments")
    assert duplicate.exit_code != 0
    assert "already exists" in duplicate.output
    bad = run(db, "teams", "create", "-x y")
    assert bad.exit_code != 0


def test_projects_create_and_list(db: str) -> None:
    ok(db, "teams", "create", "payments")
    out = ok(db, "projects", "create", "checkout", "--team", "payments").stdout
    assert "checkout" in out
    assert json.loads(ok(db, "projects", "create", "refunds", "--team", "payments", "--json").stdout) == {
        "name": "refunds",
        "team": "payments",
    }
    assert json.loads(ok(db, "projects", "list", "--json").stdout) == [
        {"name": "checkout", "team": "payments"},
        {"name": "refunds", "team": "payments"},
    ]
    assert "checkout" in ok(db, "projects", "list").stdout


def test_project_with_unknown_team_is_a_clear_error(db: str) -> None:
    result = run(db, "projects", "create", "checkout", "--team", "nope")
    assert result.exit_code != 0
    assert "unknown team 'nope'" in result.output
    assert "Traceback" not in result.output
    assert json.loads(ok(db, "projects", "list", "--json").stdout) == []


# --- keys -------------------------------------------------------------------------------
@pytest.fixture
def org(db: str) -> str:
    ok(db, "teams", "create", "payments")
    ok(db, "projects", "create", "checkout", "--team", "payments")
    return db


def test_keys_create_prints_the_secret_once(org: str) -> None:
    result = ok(org, "keys", "create", "--name", "ci", "--project", "checkout", "--environment", "staging")
    secrets = [line for line in result.stdout.split() if line.startswith("sg-")]
    assert len(secrets) == 1
    secret = secrets[0]
    assert len(secret) > 40
    assert result.stdout.count(secret) == 1
    assert secret not in result.stderr
    assert "only time" in result.stderr

    store = SQLiteStore(db_path(org))
    try:
        [key] = store.list_keys()
    finally:
        store.close()
    assert key.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert (key.name, key.project, key.environment, key.locked, key.revoked) == (
        "ci",
        "checkout",
        "staging",
        False,
        False,
    )


def test_keys_create_json(org: str) -> None:
    data = json.loads(ok(org, "keys", "create", "--name", "bot", "--project", "checkout", "--lock", "--json").stdout)
    assert data["name"] == "bot"
    assert data["key"].startswith("sg-")
    assert len(data["key"]) > 40
    assert data["project"] == "checkout"
    assert data["locked"] is True
    assert data["environment"] == "production"
    assert data["revoked"] is False


def test_keys_list_never_shows_the_secret_and_revoke(org: str) -> None:
    secret = json.loads(ok(org, "keys", "create", "--name", "a", "--json").stdout)["key"]
    other = json.loads(ok(org, "keys", "create", "--name", "b", "--project", "checkout", "--json").stdout)["key"]

    table = ok(org, "keys", "list").stdout
    listed = ok(org, "keys", "list", "--json").stdout
    for secret_text in (secret, other):
        assert secret_text not in table
        assert secret_text not in listed
        assert secret_text[:20] not in listed
    keys = json.loads(listed)
    assert [k["name"] for k in keys] == ["a", "b"]
    assert all("key" not in k for k in keys)
    assert all(k["revoked"] is False for k in keys)

    assert "revoked" in ok(org, "keys", "revoke", "a").stdout
    by_name = {k["name"]: k for k in json.loads(ok(org, "keys", "list", "--json").stdout)}
    assert by_name["a"]["revoked"] is True
    assert by_name["b"]["revoked"] is False

    missing = run(org, "keys", "revoke", "nope")
    assert missing.exit_code != 0
    assert "unknown key 'nope'" in missing.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--name", "k", "--project", "nope"), "unknown project 'nope'"),
        (("--name", "k", "--lock"), "--lock"),
    ],
)
def test_keys_create_refusals(org: str, args: tuple[str, ...], needle: str) -> None:
    result = run(org, "keys", "create", *args)
    assert result.exit_code != 0
    assert needle in result.output
    assert "sg-" not in result.stdout


# --- report and events ------------------------------------------------------------------
def cost(tokens_at_rates: list[tuple[int, str]]) -> Decimal:
    """Hand pricing: (tokens, USD per million tokens) pairs."""
    return sum((tokens * Decimal(rate) for tokens, rate in tokens_at_rates), Decimal(0)) / MILLION


# gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output
CHECKOUT_COST = cost([(600, "2.50"), (400, "1.25"), (200, "10")])
# claude-haiku-4-5: $1/M input, $0.10/M cache read, $1.25/M cache write, $5/M output
SUPPORT_COST = cost([(200, "1"), (1500, "0.10"), (300, "1.25"), (100, "5")])
# gpt-4o-mini: $0.15/M input, $0.60/M output
UNALLOCATED_COST = cost([(100, "0.15"), (50, "0.60")])


def make_event(**fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-4o",
        "endpoint": "/v1/chat/completions",
        "stream": False,
        "status": "ok",
        "http_status": 200,
    }
    values.update(fields)
    return UsageEvent(**values)


@pytest.fixture
def ledger(db: str) -> str:
    store = SQLiteStore(db_path(db))
    try:
        store.append_events(
            [
                make_event(
                    id="e1",
                    ts=datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
                    project="checkout",
                    team="payments",
                    feature="cart",
                    environment="production",
                    customer="acme",
                    key="ci",
                    trace_id="trace-1",
                    tags={"agent": "checkout-copilot"},
                    input_tokens=1000,
                    cached_input_tokens=400,
                    output_tokens=200,
                    cost_usd=CHECKOUT_COST,
                ),
                make_event(
                    id="e2",
                    ts=datetime(2025, 3, 2, 10, 0, tzinfo=UTC),
                    provider="anthropic",
                    model="claude-haiku-4-5",
                    endpoint="/v1/messages",
                    project="support",
                    team="cx",
                    input_tokens=2000,
                    cached_input_tokens=1500,
                    cache_write_tokens=300,
                    output_tokens=100,
                    reasoning_tokens=0,
                    cost_usd=SUPPORT_COST,
                    stream=True,
                ),
                make_event(
                    id="e3",
                    ts=datetime(2025, 3, 3, 10, 0, tzinfo=UTC),
                    model="gpt-4o-mini",
                    input_tokens=100,
                    output_tokens=50,
                    cost_usd=UNALLOCATED_COST,
                    estimated=True,
                    status="incomplete",
                ),
            ]
        )
    finally:
        store.close()
    return db


def test_hand_computed_costs() -> None:
    assert str(CHECKOUT_COST.normalize()) == "0.004"
    assert str(SUPPORT_COST.normalize()) == "0.001225"
    assert str(UNALLOCATED_COST.normalize()) == "0.000045"


def test_report_json_by_project_team(ledger: str) -> None:
    data = json.loads(ok(ledger, "report", "--by", "project,team", "--format", "json").stdout)
    rows = data["rows"]
    assert [(r["project"], r["team"], r["cost_usd"]) for r in rows] == [
        ("checkout", "payments", "0.004"),
        ("support", "cx", "0.001225"),
        ("unallocated", None, "0.000045"),
    ]
    contract_row = {
        "project": "checkout",
        "team": "payments",
        "cost_usd": "0.004",
        "requests": 1,
        "input_tokens": 1000,
        "output_tokens": 200,
        "cached_input_tokens": 400,
        "cache_write_tokens": 0,
    }
    assert {k: rows[0][k] for k in contract_row} == contract_row
    assert rows[1]["input_tokens"] == 2000
    assert rows[1]["cache_write_tokens"] == 300
    assert data["total_cost_usd"] == "0.00527"


def test_report_json_by_tag_and_default_dimension(ledger: str) -> None:
    data = json.loads(ok(ledger, "report", "--by", "tag:agent", "--format", "json").stdout)
    assert {r["tag:agent"]: r["cost_usd"] for r in data["rows"]} == {
        "checkout-copilot": "0.004",
        None: "0.00127",
    }
    by_default = json.loads(ok(ledger, "report", "--format", "json").stdout)
    assert [r["project"] for r in by_default["rows"]] == ["checkout", "support", "unallocated"]


def test_report_csv(ledger: str) -> None:
    out = ok(ledger, "report", "--by", "project,team", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0].startswith('"project","team","cost_usd","requests","input_tokens"')
    # Text quoted, figures bare: a spreadsheet reads the figures as numbers.
    assert out.splitlines()[1] == '"checkout","payments",0.004,1,1000,400,0,0,200,0,0,0,0'
    assert [(r["project"], r["team"], r["cost_usd"], r["input_tokens"]) for r in rows] == [
        ("checkout", "payments", "0.004", "1000"),
        ("support", "cx", "0.001225", "2000"),
        ("unallocated", "", "0.000045", "100"),
        ("total", "", "0.00527", "3100"),  # the totals line; --no-totals leaves it out
    ]
    assert out.splitlines()[-1] == '"total","",0.00527,3,3100,1900,300,0,350,0,0,1,0'
    for figure in ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "error_requests"):
        assert int(rows[-1][figure]) == sum(int(r[figure]) for r in rows[:-1]), figure
    no_totals = ok(ledger, "report", "--by", "project,team", "--format", "csv", "--no-totals").stdout
    assert no_totals.splitlines() == out.splitlines()[:-1]
    assert rows[0]["cached_input_tokens"] == "400"
    assert rows[2]["estimated_requests"] == "1"


def test_report_table(ledger: str) -> None:
    out = ok(ledger, "report", "--by", "project,team", "--format", "table").stdout
    lines = out.splitlines()
    checkout = next(line for line in lines if "checkout" in line)
    assert "payments" in checkout
    assert "0.004" in checkout
    assert "0.001225" in next(line for line in lines if "support" in line)
    assert "0.000045" in next(line for line in lines if "unallocated" in line)
    assert "0.00527" in next(line for line in lines if "total" in line)


def test_report_since_until(ledger: str) -> None:
    data = json.loads(ok(ledger, "report", "--since", "2025-03-02", "--until", "2025-03-02", "--format", "json").stdout)
    assert [(r["project"], r["cost_usd"]) for r in data["rows"]] == [("support", "0.001225")]
    data = json.loads(ok(ledger, "report", "--since", "2025-03-02", "--format", "json").stdout)
    assert data["total_cost_usd"] == "0.00127"
    data = json.loads(ok(ledger, "report", "--until", "2025-03-01", "--format", "json").stdout)
    assert data["total_cost_usd"] == "0.004"


@pytest.mark.parametrize("by", ["bogus", "project,bogus", "tag:", "project,project"])
def test_report_bad_dimension_is_a_clear_error(ledger: str, by: str) -> None:
    result = run(ledger, "report", "--by", by)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "dimension" in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--since", "2025-13-01"), "--since"),
        (("--until", "yesterday"), "--until"),
        (("--since", "2025-03-05", "--until", "2025-03-01"), "before"),
    ],
)
def test_report_bad_dates_are_clear_errors(ledger: str, args: tuple[str, ...], needle: str) -> None:
    result = run(ledger, "report", *args)
    assert result.exit_code != 0
    assert needle in result.output
    assert "Traceback" not in result.output


def test_events_json_newest_first_with_contract_fields(ledger: str) -> None:
    events = json.loads(ok(ledger, "events", "--format", "json").stdout)
    assert [e["id"] for e in events] == ["e3", "e2", "e1"]
    for e in events:
        assert set(e) >= CONTRACT_EVENT_FIELDS
    e3, e2, e1 = events
    assert e1["ts"] == "2025-03-01T10:00:00.000000Z"
    assert (e1["project"], e1["team"], e1["feature"], e1["environment"], e1["customer"]) == (
        "checkout",
        "payments",
        "cart",
        "production",
        "acme",
    )
    assert (e1["key"], e1["trace_id"], e1["tags"]) == ("ci", "trace-1", {"agent": "checkout-copilot"})
    assert (e1["input_tokens"], e1["output_tokens"], e1["cached_input_tokens"]) == (1000, 200, 400)
    assert (e1["cost_usd"], e1["status"], e1["estimated"]) == ("0.004", "ok", False)
    assert (e2["provider"], e2["model"], e2["cache_write_tokens"]) == ("anthropic", "claude-haiku-4-5", 300)
    assert e2["cost_usd"] == "0.001225"
    assert (e3["project"], e3["team"], e3["status"], e3["estimated"]) == (
        "unallocated",
        None,
        "incomplete",
        True,
    )
    assert e3["cost_usd"] == "0.000045"
    assert e3["tags"] == {}

    limited = json.loads(ok(ledger, "events", "--format", "json", "--limit", "2").stdout)
    assert [e["id"] for e in limited] == ["e3", "e2"]


def test_events_table(ledger: str) -> None:
    # At the default 80 columns the other cells may be shortened, never the exact cost.
    out = ok(ledger, "events").stdout
    lines = [line for line in out.splitlines() if "202" in line]
    assert len(lines) == 3
    assert "~0.000045" in lines[0]  # newest first; estimated costs are marked
    assert "0.001225" in lines[1]
    assert "0.004" in lines[2]


def test_empty_ledger(db: str) -> None:
    ok(db, "migrate")  # an empty ledger, made the way a new user makes one
    assert json.loads(ok(db, "events", "--format", "json").stdout) == []
    data = json.loads(ok(db, "report", "--format", "json").stdout)
    assert data["rows"] == []
    assert data["total_cost_usd"] == "0"


def test_bad_database_url_is_a_clear_error(db: str) -> None:
    result = run("mysql://nowhere", "teams", "list")
    assert result.exit_code != 0
    assert "unsupported database URL" in result.output


def test_db_from_environment_when_no_flag(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDGATE_DB", db)
    ok(db, "teams", "create", "payments")
    result = CliRunner().invoke(main, ["teams", "list", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"name": "payments", "cost_center": None, "reference": None}]


def test_missing_config_file_is_a_clear_error(db: str) -> None:
    result = run(db, "teams", "list", "--config", "does-not-exist.toml")
    assert result.exit_code != 0
    assert "does not exist" in result.output
