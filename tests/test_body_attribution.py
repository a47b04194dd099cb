"""Attribution from body fields (OpenAI user / safety_identifier / metadata, Anthropic
metadata.user_id): the pure rules, the configuration file, and both SDKs through the gateway."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest

from spendgate.attribution import (
    AttributionError,
    BodyRule,
    BodyRuleError,
    Directory,
    GatewayKey,
    Project,
    Team,
    attribute,
    body_values,
    parse_body_rules,
)
from spendgate.settings import SettingsError, load_settings
from tests.conftest import Gateway

DIRECTORY = Directory.build(
    teams=[Team("payments"), Team("growth")],
    projects=[Project("checkout", "payments"), Project("search", "growth")],
    keys=[],
)
RULES = (
    BodyRule("user", "tag:agent", prefix="agent:"),
    BodyRule("safety_identifier", "customer"),
    BodyRule("metadata.user_id", "tag:agent", prefix="agent:"),
    BodyRule("metadata.feature", "feature"),
    BodyRule("metadata.project", "project"),
)


def _key(**kwargs) -> GatewayKey:
    return GatewayKey(name="k", key_hash="h", key_prefix="sg-…", **kwargs)


def _owner(body: dict, headers: dict | None = None, rules=RULES, key: GatewayKey | None = None):
    found = body_values(rules, body)
    key = key or _key(project="checkout", team="payments")
    return attribute(key, headers or {}, DIRECTORY, found.fields, found.tags)


# --- the rules, pure -------------------------------------------------------------------------
def test_prefixed_user_becomes_a_tag_and_safety_identifier_the_customer() -> None:
    owner = _owner({"user": "agent:support-bot", "safety_identifier": "u-81f2"})
    assert owner.tags == {"agent": "support-bot"}
    assert owner.customer == "u-81f2"


def test_a_value_without_the_prefix_is_not_read() -> None:
    owner = _owner({"user": "alice@example.com"})
    assert owner.tags is None


def test_anthropic_metadata_user_id() -> None:
    assert _owner({"metadata": {"user_id": "agent:billing-bot"}}).tags == {"agent": "billing-bot"}


def test_headers_win_over_the_body_and_the_body_over_the_keys_default_project() -> None:
    body = {"metadata": {"feature": "from-body", "project": "checkout"}, "user": "agent:body-bot"}
    owner = _owner(body, {"x-spendgate-feature": "from-header", "x-spendgate-tags": "agent=header-bot, tier=gold"})
    assert owner.feature == "from-header"
    assert owner.tags == {"agent": "header-bot", "tier": "gold"}
    # The body's project comes before the key's default (and is held to the key's scope).
    key = _key(project="search", team="growth", allowed_projects=frozenset({"checkout"}))
    assert _owner({"metadata": {"project": "checkout"}}, key=key).project == "checkout"
    assert _owner({}, key=key).project == "search"
    # A locked key stays locked.
    locked = _key(project="search", team="growth", locked=True, org_wide=True)
    assert _owner({"metadata": {"project": "checkout"}}, key=locked).project == "search"


def test_a_body_project_outside_the_keys_scope_is_refused_like_the_header() -> None:
    from spendgate.attribution import AttributionForbidden

    with pytest.raises(AttributionForbidden):
        _owner({"metadata": {"project": "search"}})
    with pytest.raises(AttributionError, match="unknown project 'nope'"):
        _owner({"metadata": {"project": "nope"}})


def test_every_metadata_entry_as_a_tag() -> None:
    rules = (BodyRule("metadata.*", "tag:*"),)
    owner = _owner({"metadata": {"agent": "a1", "run": "r-9"}}, rules=rules)
    assert owner.tags == {"agent": "a1", "run": "r-9"}


def test_body_values_are_bounded_like_header_values() -> None:
    with pytest.raises(AttributionError, match=r"body field 'user'.*longer than 256"):
        body_values(RULES, {"user": "agent:" + "x" * 300})
    with pytest.raises(AttributionError, match="must be a string"):
        body_values(RULES, {"safety_identifier": 12})
    with pytest.raises(AttributionError, match="no ',' or '='"):
        body_values(RULES, {"user": "agent:a=b"})
    with pytest.raises(AttributionError, match="no tag key"):
        body_values((BodyRule("metadata.*", "tag:*"),), {"metadata": {"bad key!": "v"}})
    with pytest.raises(AttributionError, match="more than 32 tags"):
        body_values((BodyRule("metadata.*", "tag:*"),), {"metadata": {f"k{i}": "v" for i in range(33)}})
    # Null and absent fields are simply not there.
    assert not body_values(RULES, {"user": None, "metadata": None})


def test_rules_in_the_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "spendgate.toml"
    config.write_text(
        '[[attribution.body]]\nfield = "user"\nprefix = "agent:"\ndimension = "tag:agent"\n\n'
        '[[attribution.body]]\nfield = "metadata.*"\ndimension = "tag:*"\n'
    )
    settings = load_settings(environ={}, config_path=config)
    assert settings.body_attribution == (BodyRule("user", "tag:agent", "agent:"), BodyRule("metadata.*", "tag:*"))
    config.write_text('[[attribution.body]]\nfield = "prompt"\ndimension = "feature"\n')
    with pytest.raises(SettingsError, match="field must be one of"):
        load_settings(environ={}, config_path=config)
    config.write_text('[[attribution.body]]\nfield = "user"\ndimension = "colour"\n')
    with pytest.raises(SettingsError, match="dimension must be one of"):
        load_settings(environ={}, config_path=config)
    with pytest.raises(BodyRuleError, match=r"metadata\.\* goes with dimension tag:\*"):
        parse_body_rules([{"field": "metadata.*", "dimension": "feature"}], "x")
    with pytest.raises(BodyRuleError, match="unknown keys"):
        parse_body_rules([{"field": "user", "dimension": "feature", "regex": ".*"}], "x")


# --- through the gateway, both SDKs ----------------------------------------------------------
@pytest.fixture
def ruled(make_gateway) -> tuple[Gateway, str]:
    gateway = make_gateway(body_attribution=RULES)
    gateway.team("payments")
    gateway.project("checkout", team="payments")
    return gateway, gateway.key("bots", project="checkout")


def test_openai_user_and_metadata_reach_the_ledger_and_reports(ruled) -> None:
    gateway, key = ruled
    client = gateway.openai(key)
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "[[sim input=10 output=5]]"}],
        user="agent:support-bot",
        safety_identifier="hashed-user-7",
        metadata={"feature": "refunds"},
    )
    client.responses.create(model="gpt-4o-mini", input="[[sim input=10 output=5]]", user="agent:triage-bot")
    # The body passes upstream untouched.
    assert gateway.sim.log.records[0].body["user"] == "agent:support-bot"
    first, second = gateway.events()
    assert (first["tags"], first["customer"], first["feature"]) == (
        {"agent": "support-bot"},
        "hashed-user-7",
        "refunds",
    )
    assert second["tags"] == {"agent": "triage-bot"}
    rows = {row["tag:agent"]: row["requests"] for row in gateway.report("tag:agent")["rows"]}
    assert rows == {"support-bot": 1, "triage-bot": 1}


def test_anthropic_metadata_user_id_reaches_the_ledger(ruled) -> None:
    gateway, key = ruled
    gateway.anthropic(key).messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        messages=[{"role": "user", "content": "[[sim input=10 output=5]]"}],
        metadata={"user_id": "agent:billing-bot"},
    )
    [event] = gateway.events()
    assert event["tags"] == {"agent": "billing-bot"}


def test_a_bad_body_value_is_a_400_in_each_shape_and_nothing_goes_upstream(ruled) -> None:
    gateway, key = ruled
    with pytest.raises(openai.BadRequestError, match="body field 'user'"):
        gateway.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], user="agent:" + "x" * 300
        )
    with pytest.raises(anthropic.BadRequestError, match=r"metadata\.user_id"):
        gateway.anthropic(key).messages.create(
            model="claude-haiku-4-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "hi"}],
            metadata={"user_id": "agent:" + "y" * 300},
        )
    assert gateway.sim.log.records == []
    assert gateway.events() == []


def test_without_rules_the_body_is_not_read(gateway: Gateway) -> None:
    gateway.team("payments")
    gateway.project("checkout", team="payments")
    key = gateway.key("bots", project="checkout")
    gateway.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], user="agent:support-bot"
    )
    [event] = gateway.events()
    assert event["tags"] == {}
