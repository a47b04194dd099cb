"""Who owns a request: the fallback chain, pure and through the gateway into reports."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import httpx
import pytest

from spendgate.attribution import (
    AttributionError,
    Directory,
    GatewayKey,
    Project,
    Team,
    attribute,
    parse_tags,
)
from spendgate.budgets.model import Budget, Scope
from tests.conftest import Gateway

DIRECTORY = Directory.build(
    teams=[Team("payments", "CC-1"), Team("growth", "CC-2")],
    projects=[Project("checkout", "payments"), Project("search", "growth")],
    keys=[],
)


def _key(**kwargs) -> GatewayKey:
    return GatewayKey(name="k", key_hash="h", key_prefix="sg-…", **kwargs)


# --- the rules, pure ---------------------------------------------------------------------
def test_locked_key_wins_over_the_header() -> None:
    owner = attribute(_key(project="checkout", locked=True), {"x-spendgate-project": "search"}, DIRECTORY)
    assert (owner.project, owner.team, owner.cost_center) == ("checkout", "payments", "CC-1")


def test_header_wins_over_the_keys_default_project() -> None:
    key = _key(project="checkout", team="payments", allowed_projects=frozenset({"search"}))
    owner = attribute(key, {"x-spendgate-project": "search"}, DIRECTORY)
    assert (owner.project, owner.team) == ("search", "growth")


def test_keys_default_project_when_no_header() -> None:
    owner = attribute(_key(project="checkout"), {}, DIRECTORY)
    assert owner.project == "checkout"


def test_no_project_anywhere_is_unallocated_and_team_header_then_applies() -> None:
    assert attribute(_key(), {}, DIRECTORY).project is None
    owner = attribute(_key(team="growth"), {"x-spendgate-team": "growth"}, DIRECTORY)
    assert (owner.project, owner.team, owner.cost_center) == (None, "growth", "CC-2")


def test_team_header_is_ignored_when_there_is_a_project() -> None:
    owner = attribute(_key(project="checkout"), {"x-spendgate-team": "growth"}, DIRECTORY)
    assert owner.team == "payments"


def test_unknown_project_or_team_is_an_error_naming_the_known_ones_to_an_org_wide_key() -> None:
    with pytest.raises(AttributionError, match="known projects: checkout, search"):
        attribute(_key(org_wide=True), {"x-spendgate-project": "nope"}, DIRECTORY)
    with pytest.raises(AttributionError, match="known teams: growth, payments"):
        attribute(_key(org_wide=True), {"x-spendgate-team": "nope"}, DIRECTORY)


def test_environment_is_the_keys() -> None:
    assert attribute(_key(environment="staging"), {}, DIRECTORY).environment == "staging"


def test_tags() -> None:
    assert parse_tags("agent=checkout-copilot, tier = gold ,") == {
        "agent": "checkout-copilot",
        "tier": "gold",
    }
    with pytest.raises(AttributionError):
        parse_tags("agent")
    with pytest.raises(AttributionError):
        parse_tags("=x")


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("a=b=c", "one '=' in each"),
        ("agent=x, agent=y", "'agent' is given twice"),
        ("agent=" + "v" * 257, "longer than 256 characters"),
        (", ".join(f"k{i}=v" for i in range(33)), "more than 32 tags"),
        ("k=" + "v" * 200 + ", " + ", ".join(f"k{i}={'v' * 200}" for i in range(40)), "longer than 8192 characters"),
        ("two words=x", "bad tag key 'two words'"),
        ("-dash=x", "bad tag key '-dash'"),
        ("k" * 65 + "=x", "bad tag key"),
    ],
)
def test_tags_are_bounded_and_never_reinterpreted(header: str, problem: str) -> None:
    with pytest.raises(AttributionError, match=re.escape(problem)):
        parse_tags(header)


def test_tags_at_their_limits_are_accepted() -> None:
    tags = parse_tags(", ".join(f"key_{i}.x:y/z-{i}={'v' * 200}" for i in range(32)))
    assert len(tags) == 32 and all(len(value) == 200 for value in tags.values())
    assert parse_tags("run=" + "7" * 256) == {"run": "7" * 256}


# --- through the gateway into reports ------------------------------------------------------
def _call(gateway: Gateway, key: str, headers: dict[str, str] | None = None, tokens: int = 1000) -> None:
    gateway.openai(key, default_headers=headers or {}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"[[sim input={tokens} output=100]]"}]
    )


def test_a_w3c_traceparent_is_the_trace_when_no_trace_is_named(gateway: Gateway) -> None:
    """An agent instrumented with OpenTelemetry sends ``traceparent`` on every call of its run:
    that run is the request's trace (so runaway-trace detection and ``trace:`` suspensions see
    it), unless ``x-spendgate-trace-id`` names one; an invalid traceparent names nothing."""
    key = gateway.key("otel-agent")
    run = "4bf92f3577b34da6a3ce929d0e0e4736"
    _call(gateway, key, {"traceparent": f"00-{run}-00f067aa0ba902b7-01"})
    _call(gateway, key, {"traceparent": f"00-{run}-53995c3f42cd8ad8-01"})  # the same run, another span
    _call(gateway, key, {"traceparent": f"00-{run}-00f067aa0ba902b7-01", "x-spendgate-trace-id": "named"})
    _call(gateway, key, {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"})  # all-zero trace id: invalid
    _call(gateway, key, {"traceparent": "not a traceparent"})
    traces = {r["trace"]: r["requests"] for r in gateway.report("trace")["rows"]}
    assert traces == {run: 2, "named": 1, None: 2}


def test_every_dimension_reaches_the_report(gateway: Gateway) -> None:
    gateway.team("payments", cost_center="CC-1")
    gateway.team("growth")
    gateway.project("checkout", team="payments")
    gateway.project("search", team="growth")
    locked = gateway.key("checkout-locked", project="checkout", lock=True, environment="production")
    default = gateway.key("search-default", project="search", environment="staging", allow_projects=["checkout"])
    loose = gateway.key("loose", environment="development", team="growth")

    _call(gateway, locked, {"x-spendgate-project": "search", "x-spendgate-feature": "refunds"})  # rule 1
    _call(gateway, default, {"x-spendgate-project": "checkout", "x-spendgate-customer": "acme"})  # rule 2
    _call(gateway, default, {"x-spendgate-trace-id": "trace-1", "x-spendgate-tags": "agent=reranker"})  # rule 3
    _call(gateway, loose, {"x-spendgate-team": "growth"})  # rule 4, with a team
    _call(gateway, loose)  # rule 4, nothing at all

    by_project = {row["project"]: row["requests"] for row in gateway.report("project")["rows"]}
    assert by_project == {"checkout": 2, "search": 1, "unallocated": 2}
    by_team = {row["team"]: row["requests"] for row in gateway.report("team")["rows"]}
    assert by_team == {"payments": 2, "growth": 2, None: 1}
    by_key_env = {(r["key"], r["environment"]): r["requests"] for r in gateway.report("key", "environment")["rows"]}
    assert by_key_env == {
        ("checkout-locked", "production"): 1,
        ("search-default", "staging"): 2,
        ("loose", "development"): 2,
    }
    features = {r["feature"]: r["requests"] for r in gateway.report("feature")["rows"]}
    assert features == {"refunds": 1, None: 4}
    customers = {r["customer"] for r in gateway.report("customer")["rows"]}
    assert customers == {"acme", None}
    assert {r["trace"] for r in gateway.report("trace")["rows"]} == {"trace-1", None}
    tags = {r["tag:agent"]: r["requests"] for r in gateway.report("tag:agent")["rows"]}
    assert tags == {"reranker": 1, None: 4}
    models = {(r["provider"], r["model"]): r["requests"] for r in gateway.report("provider", "model")["rows"]}
    assert models == {("openai", "gpt-4o-mini"): 5}

    # Every request's cost is counted once, whatever the grouping.
    totals = {gateway.report(*by)["total_cost_usd"] for by in [("project",), ("team",), ("key",), ("tag:agent",), ()]}
    assert len(totals) == 1


def test_response_header_names_the_resolved_project(gateway: Gateway) -> None:
    gateway.team("t")
    gateway.project("p", team="t")
    key = gateway.key("k", team="t")
    client = gateway.openai(key)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-spendgate-project"] == "unallocated"
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-spendgate-project": "p"},
    )
    assert raw.headers["x-spendgate-project"] == "p"


def test_non_ascii_header_values_are_utf8_and_reach_their_budget(gateway: Gateway) -> None:
    """``x-spendgate-customer: café`` was decoded as Latin-1 (``cafÃ©``), so a ``customer:café``
    budget never matched and the spend escaped it."""
    key = gateway.key("k")
    gateway.store.create_budget(Budget(name="cafe", scope=Scope.parse("customer:café"), limit_usd=Decimal(1)))
    gateway.wait_for_directory()
    # The Python SDKs refuse non-ASCII header values (httpx encodes str headers as ASCII), so
    # this is what curl and most other clients send: the UTF-8 bytes.
    utf8 = {
        "authorization": f"Bearer {key}",
        "x-spendgate-customer": "café".encode(),
        "x-spendgate-tags": "ville=Zürich".encode(),
    }
    ask = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    answered = httpx.post(f"{gateway.url}/v1/chat/completions", json=ask, headers=utf8)
    assert answered.status_code == 200 and answered.headers["x-spendgate-budget"] == "cafe"
    [event] = gateway.events()
    assert (event["customer"], event["tags"]) == ("café", {"ville": "Zürich"})
    statuses = asyncio.run_coroutine_threadsafe(gateway.app._budget_statuses(), gateway.app.loop).result(5)
    assert Decimal(statuses[0]["spent_usd"]) == Decimal(event["cost_usd"]) > 0
    # Bytes that are not UTF-8 are a 400 naming the header, in each provider's shape.
    bad = {"authorization": f"Bearer {key}", "x-spendgate-customer": b"caf\xe9"}
    refused = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o-mini"}, headers=bad)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "header x-spendgate-customer is not valid UTF-8"
    bad_anthropic = {"x-api-key": key, "x-spendgate-feature": b"\xff"}
    refused = httpx.post(f"{gateway.url}/v1/messages", json={"model": "claude-haiku-4-5"}, headers=bad_anthropic)
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
    assert len(gateway.sim.log.records) == 1
