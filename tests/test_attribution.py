"""Who owns a request: the fallback chain, pure and through the gateway into reports."""

from __future__ import annotations

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
    owner = attribute(_key(project="checkout"), {"x-spendgate-project": "search"}, DIRECTORY)
    assert (owner.project, owner.team) == ("search", "growth")


def test_keys_default_project_when_no_header() -> None:
    owner = attribute(_key(project="checkout"), {}, DIRECTORY)
    assert owner.project == "checkout"


def test_no_project_anywhere_is_unallocated_and_team_header_then_applies() -> None:
    assert attribute(_key(), {}, DIRECTORY).project is None
    owner = attribute(_key(), {"x-spendgate-team": "growth"}, DIRECTORY)
    assert (owner.project, owner.team, owner.cost_center) == (None, "growth", "CC-2")


def test_team_header_is_ignored_when_there_is_a_project() -> None:
    owner = attribute(_key(project="checkout"), {"x-spendgate-team": "growth"}, DIRECTORY)
    assert owner.team == "payments"


def test_unknown_project_or_team_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(AttributionError, match="known projects: checkout, search"):
        attribute(_key(), {"x-spendgate-project": "nope"}, DIRECTORY)
    with pytest.raises(AttributionError, match="known teams: growth, payments"):
        attribute(_key(), {"x-spendgate-team": "nope"}, DIRECTORY)


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


# --- through the gateway into reports ------------------------------------------------------
def _call(gateway: Gateway, key: str, headers: dict[str, str] | None = None, tokens: int = 1000) -> None:
    gateway.openai(key, default_headers=headers or {}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"[[sim input={tokens} output=100]]"}]
    )


def test_every_dimension_reaches_the_report(gateway: Gateway) -> None:
    gateway.team("payments", cost_center="CC-1")
    gateway.team("growth")
    gateway.project("checkout", team="payments")
    gateway.project("search", team="growth")
    locked = gateway.key("checkout-locked", project="checkout", lock=True, environment="production")
    default = gateway.key("search-default", project="search", environment="staging")
    loose = gateway.key("loose", environment="development")

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
    key = gateway.key("k")
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
