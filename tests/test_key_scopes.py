"""Key scopes: a key attributes spend only to the projects and teams it may name.

Before, any key that was not locked could name any project of any team with
``x-spendgate-project`` (or any team with ``x-spendgate-team``), so one team's key could spend
another team's budget; and the 400 for an unknown name listed every project and team there is.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from click.testing import CliRunner, Result

from spendgate.attribution import (
    AttributionError,
    AttributionForbidden,
    Directory,
    GatewayKey,
    Project,
    Team,
    attribute,
)
from spendgate.budgets.model import Budget, RateLimit, Scope
from spendgate.cli import main
from tests.conftest import Gateway

DIRECTORY = Directory.build(
    teams=[Team("payments"), Team("growth"), Team("platform")],
    projects=[
        Project("checkout", "payments"),
        Project("refunds", "payments"),
        Project("search", "growth"),
        Project("ranking", "growth"),
        Project("infra", "platform"),
    ],
    keys=[],
)
OTHER_TEAMS_NAMES = ("growth", "ranking", "platform", "infra")  # never told to a payments key


def _key(**kwargs: Any) -> GatewayKey:
    return GatewayKey(name="k", key_hash="h", key_prefix="sg-…", **kwargs)


def _project(key: GatewayKey, name: str) -> str | None:
    return attribute(key, {"x-spendgate-project": name}, DIRECTORY).project


def _refused(key: GatewayKey, headers: dict[str, str]) -> AttributionForbidden:
    with pytest.raises(AttributionForbidden) as refused:
        attribute(key, headers, DIRECTORY)
    return refused.value


# --- the rules, pure ---------------------------------------------------------------------
def test_a_team_key_names_its_teams_projects_and_no_other_teams() -> None:
    key = _key(project="checkout", team="payments")
    assert (_project(key, "checkout"), _project(key, "refunds")) == ("checkout", "refunds")
    assert attribute(key, {}, DIRECTORY).project == "checkout"  # its default, as before
    refused = _refused(key, {"x-spendgate-project": "search"})
    assert refused.code == "project_not_allowed"
    message = str(refused)
    assert "'search'" in message and "spendgate keys update k --allow-project search" in message
    assert "--org-wide" in message and "team payments" in message
    assert not any(name in message for name in OTHER_TEAMS_NAMES), message  # not even search's team


def test_allowed_projects_and_the_default_project_widen_a_scope() -> None:
    shared = _key(team="payments", allowed_projects=frozenset({"search"}))
    assert _project(shared, "search") == "search"
    assert _refused(shared, {"x-spendgate-project": "ranking"}).code == "project_not_allowed"
    listed_only = _key(allowed_projects=frozenset({"infra"}))
    assert _project(listed_only, "infra") == "infra"
    assert _refused(listed_only, {"x-spendgate-project": "checkout"}).code == "project_not_allowed"
    # A key may always name its own default project, whatever team it was given.
    moved = _key(project="checkout", team="growth")
    assert (_project(moved, "checkout"), _project(moved, "ranking")) == ("checkout", "ranking")
    assert _refused(moved, {"x-spendgate-project": "refunds"}).code == "project_not_allowed"


def test_an_org_wide_key_names_any_project_and_any_team() -> None:
    key = _key(org_wide=True)
    assert [_project(key, p) for p in sorted(DIRECTORY.projects)] == sorted(DIRECTORY.projects)
    assert attribute(key, {"x-spendgate-team": "platform"}, DIRECTORY).team == "platform"


def test_a_key_without_a_scope_names_nothing_and_is_served_unallocated() -> None:
    key = _key()
    owner = attribute(key, {"x-spendgate-feature": "f"}, DIRECTORY)
    assert (owner.project, owner.team, owner.feature) == (None, None, "f")
    assert _refused(key, {"x-spendgate-project": "checkout"}).code == "project_not_allowed"
    refused = _refused(key, {"x-spendgate-team": "payments"})
    assert refused.code == "team_not_allowed" and "it has none" in str(refused)


def test_the_team_header_is_bounded_to_the_keys_own_team() -> None:
    key = _key(team="payments", allowed_projects=frozenset({"search"}))
    owner = attribute(key, {"x-spendgate-team": "payments"}, DIRECTORY)
    assert (owner.project, owner.team) == (None, "payments")
    refused = _refused(key, {"x-spendgate-team": "growth"})  # an allowed project is not its team
    assert refused.code == "team_not_allowed"
    assert "spendgate keys update k --team growth" in str(refused) and "own team (payments)" in str(refused)
    # With a project the team header is not used, so it cannot be refused either.
    assert attribute(key, {"x-spendgate-project": "checkout", "x-spendgate-team": "growth"}, DIRECTORY).team == (
        "payments"
    )


def test_a_locked_key_ignores_whatever_it_names() -> None:
    key = _key(project="checkout", team="payments", locked=True)
    owner = attribute(key, {"x-spendgate-project": "infra", "x-spendgate-team": "platform"}, DIRECTORY)
    assert (owner.project, owner.team) == ("checkout", "payments")


def test_unknown_names_list_only_what_the_key_may_see() -> None:
    def unknown(key: GatewayKey, header: str) -> str:
        with pytest.raises(AttributionError) as error:
            attribute(key, {header: "nope"}, DIRECTORY)
        return str(error.value)

    scoped = _key(team="payments", allowed_projects=frozenset({"infra"}))
    assert unknown(scoped, "x-spendgate-project") == (
        "unknown project 'nope'; projects this key may name: checkout, infra, refunds"
    )
    assert unknown(scoped, "x-spendgate-team") == "unknown team 'nope'; teams this key may name: payments"
    assert unknown(_key(), "x-spendgate-project") == "unknown project 'nope'"
    assert unknown(_key(), "x-spendgate-team") == "unknown team 'nope'"
    org = _key(org_wide=True)
    assert unknown(org, "x-spendgate-project").endswith("known projects: checkout, infra, ranking, refunds, search")
    assert unknown(org, "x-spendgate-team").endswith("known teams: growth, payments, platform")


# --- through the gateway, with the official SDKs -------------------------------------------
CHAT = {"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "[[sim output=5]]"}]}
MESSAGE = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "[[sim output=5]]"}]}


def _two_teams(gateway: Gateway) -> None:
    gateway.team("alpha")
    gateway.team("bravo")
    gateway.project("alpha-app", team="alpha")
    gateway.project("alpha-tools", team="alpha")
    gateway.project("bravo-app", team="bravo")


def _chat(gateway: Gateway, key: str, **headers: str) -> Any:
    return gateway.openai(key, default_headers=headers).chat.completions.with_raw_response.create(**CHAT)


def _message(gateway: Gateway, key: str, **headers: str) -> Any:
    return gateway.anthropic(key, default_headers=headers).messages.with_raw_response.create(**MESSAGE)


def _statuses(gateway: Gateway) -> dict[str, dict[str, Any]]:
    future = asyncio.run_coroutine_threadsafe(gateway.app._budget_statuses(), gateway.app.loop)
    return {status["name"]: status for status in future.result(10)}


def test_another_teams_project_is_a_403_that_reaches_no_provider_and_spends_nothing_of_its_budget(
    gateway: Gateway,
) -> None:
    _two_teams(gateway)
    alpha = gateway.key("alpha-key", project="alpha-app")
    bravo = gateway.key("bravo-key", project="bravo-app")
    gateway.store.create_budget(Budget(name="bravo-month", scope=Scope.parse("team:bravo"), limit_usd=Decimal(5)))
    gateway.store.create_limit(RateLimit(Scope.parse("project:bravo-app"), rpm=1))
    gateway.wait_for_directory()
    name_bravo = {"x-spendgate-project": "bravo-app"}

    for stream in (False, True):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            gateway.openai(alpha, default_headers=name_bravo).chat.completions.create(**CHAT, stream=stream)
        assert refused.value.status_code == 403
        body = refused.value.response.json()
        assert body["error"]["type"] == "permission_error" and body["error"]["code"] == "project_not_allowed"
        assert "'bravo-app'" in body["error"]["message"] and "--allow-project bravo-app" in body["error"]["message"]
    with pytest.raises(anthropic.PermissionDeniedError) as refused_anthropic:
        gateway.anthropic(alpha, default_headers=name_bravo).messages.create(**MESSAGE)
    body = refused_anthropic.value.response.json()
    assert body == {"type": "error", "error": {"type": "permission_error", "message": body["error"]["message"]}}
    assert "alpha-key" in body["error"]["message"] and "'bravo-app'" in body["error"]["message"]
    responses = httpx.post(
        f"{gateway.url}/v1/responses",
        json={"model": "gpt-4o-mini", "input": "hi"},
        headers={"authorization": f"Bearer {alpha}", **name_bravo},
    )
    assert responses.status_code == 403 and responses.json()["error"]["code"] == "project_not_allowed"

    assert gateway.sim.log.records == [], "a refused request reached the provider"
    assert gateway.events() == [], "a refused request was recorded"
    status = _statuses(gateway)["bravo-month"]
    assert (status["spent_usd"], status["reserved_usd"]) == ("0", "0")
    # bravo's one request a minute is still there: the refusals counted against nothing of bravo's.
    assert _chat(gateway, bravo).headers["x-spendgate-project"] == "bravo-app"
    with pytest.raises(openai.RateLimitError):
        _chat(gateway, bravo)  # (the limit is real)


def test_own_team_allowed_and_org_wide_keys_name_their_projects(gateway: Gateway) -> None:
    _two_teams(gateway)
    alpha = gateway.key("alpha-key", project="alpha-app")
    shared = gateway.key("alpha-shared", team="alpha", allow_projects=["bravo-app"])
    finance = gateway.key("finance-batch", org_wide=True)
    bare = gateway.key("bare")

    assert _chat(gateway, alpha, **{"x-spendgate-project": "alpha-tools"}).headers["x-spendgate-project"] == (
        "alpha-tools"
    )
    assert _message(gateway, alpha, **{"x-spendgate-project": "alpha-tools"}).headers["x-spendgate-project"] == (
        "alpha-tools"
    )
    assert _message(gateway, shared, **{"x-spendgate-project": "bravo-app"}).headers["x-spendgate-project"] == (
        "bravo-app"
    )
    assert _chat(gateway, finance, **{"x-spendgate-project": "bravo-app"}).status_code == 200
    assert _message(gateway, finance, **{"x-spendgate-team": "alpha"}).status_code == 200
    assert _chat(gateway, bare).headers["x-spendgate-project"] == "unallocated"
    with pytest.raises(anthropic.PermissionDeniedError):
        _message(gateway, bare, **{"x-spendgate-project": "alpha-app"})

    rows = {
        (r["key"], r["project"], r["team"]): r["requests"] for r in gateway.report("key", "project", "team")["rows"]
    }
    assert rows == {
        ("alpha-key", "alpha-tools", "alpha"): 2,
        ("alpha-shared", "bravo-app", "bravo"): 1,
        ("finance-batch", "bravo-app", "bravo"): 1,
        ("finance-batch", "unallocated", "alpha"): 1,
        ("bare", "unallocated", None): 1,
    }


def test_the_team_header_is_bounded_through_the_gateway(gateway: Gateway) -> None:
    _two_teams(gateway)
    loose = gateway.key("loose")  # no project, no scope: it used to name any team
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _chat(gateway, loose, **{"x-spendgate-team": "bravo"})
    assert refused.value.body["code"] == "team_not_allowed"
    ops = gateway.key("alpha-ops", team="alpha")
    assert _chat(gateway, ops, **{"x-spendgate-team": "alpha"}).status_code == 200
    with pytest.raises(anthropic.PermissionDeniedError) as refused_anthropic:
        _message(gateway, ops, **{"x-spendgate-team": "bravo"})
    assert "--team bravo" in refused_anthropic.value.response.json()["error"]["message"]
    assert [(e["key"], e["team"]) for e in gateway.events()] == [("alpha-ops", "alpha")]
    assert len(gateway.sim.log.records) == 1


def test_the_400_for_an_unknown_name_tells_only_what_the_key_may_see(gateway: Gateway) -> None:
    _two_teams(gateway)
    gateway.project("bravo-secret-merger", team="bravo")
    alpha = gateway.key("alpha-key", project="alpha-app")
    with pytest.raises(openai.BadRequestError) as unknown:
        _chat(gateway, alpha, **{"x-spendgate-project": "nope"})
    assert unknown.value.body["message"] == "unknown project 'nope'; projects this key may name: alpha-app, alpha-tools"
    with pytest.raises(anthropic.BadRequestError) as unknown_anthropic:
        _message(gateway, alpha, **{"x-spendgate-project": "nope"})
    message = unknown_anthropic.value.response.json()["error"]["message"]
    assert "bravo" not in message and "alpha-tools" in message
    loose = gateway.key("loose")
    with pytest.raises(openai.BadRequestError) as unknown_team:
        _chat(gateway, loose, **{"x-spendgate-team": "nope"})
    assert unknown_team.value.body["message"] == "unknown team 'nope'"
    assert gateway.sim.log.records == []


def _cli(db_url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, [*args, "--db", db_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_keys_update_reaches_a_running_gateway(gateway: Gateway) -> None:
    _two_teams(gateway)
    alpha = gateway.key("alpha-key", project="alpha-app")
    name_bravo = {"x-spendgate-project": "bravo-app"}
    with pytest.raises(openai.PermissionDeniedError):
        _chat(gateway, alpha, **name_bravo)

    assert (
        "scope team alpha + bravo-app"
        in _cli(gateway.db_url, "keys", "update", "alpha-key", "--allow-project", "bravo-app").stdout
    )
    gateway.wait_for_directory()  # within the refresh interval, as every config change
    assert _chat(gateway, alpha, **name_bravo).headers["x-spendgate-project"] == "bravo-app"

    _cli(gateway.db_url, "keys", "update", "alpha-key", "--disallow-project", "bravo-app")
    gateway.wait_for_directory()
    with pytest.raises(anthropic.PermissionDeniedError):
        _message(gateway, alpha, **name_bravo)

    updated = json.loads(_cli(gateway.db_url, "keys", "update", "alpha-key", "--org-wide", "--json").stdout)
    assert (updated["team"], updated["allowed_projects"], updated["org_wide"]) == ("alpha", [], True)
    gateway.wait_for_directory()
    assert _message(gateway, alpha, **name_bravo).headers["x-spendgate-project"] == "bravo-app"

    _cli(gateway.db_url, "keys", "update", "alpha-key", "--no-org-wide", "--no-team")
    gateway.wait_for_directory()
    with pytest.raises(openai.PermissionDeniedError):
        _chat(gateway, alpha, **{"x-spendgate-project": "alpha-tools"})
    assert _chat(gateway, alpha).headers["x-spendgate-project"] == "alpha-app"  # its default project still
    assert [e["project"] for e in gateway.events()] == ["bravo-app", "bravo-app", "alpha-app"]


def test_the_admin_api_creates_and_updates_scopes(make_gateway: Any) -> None:
    secret_admin = "admin-secret-for-tests"
    gateway = make_gateway(admin_key=secret_admin)
    _two_teams(gateway)
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {secret_admin}"}) as admin:
        created = admin.post("/admin/keys", json={"name": "ci", "team": "alpha", "allow_projects": ["bravo-app"]})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert (created.json()["team"], created.json()["allowed_projects"], created.json()["org_wide"]) == (
            "alpha",
            ["bravo-app"],
            False,
        )
        assert _chat(gateway, key, **{"x-spendgate-project": "bravo-app"}).status_code == 200

        updated = admin.post("/admin/keys/ci/update", json={"team": None, "disallow_projects": ["bravo-app"]})
        assert updated.status_code == 201, updated.text
        assert (updated.json()["team"], updated.json()["allowed_projects"]) == (None, [])
        gateway.wait_for_directory()
        with pytest.raises(openai.PermissionDeniedError):
            _chat(gateway, key, **{"x-spendgate-project": "alpha-app"})
        assert admin.post("/admin/keys/ci/update", json={"org_wide": True}).json()["org_wide"] is True
        assert [k["org_wide"] for k in admin.get("/admin/keys").json()] == [True]

        for bad, needle in [
            ({"org_wide": "yes"}, "org_wide must be true or false"),
            ({"allow_projects": "bravo-app"}, "allow_projects must be a list"),
            ({"team": 7}, "team must be a string"),
            ({"allow_projects": ["nope"]}, "unknown project 'nope'"),
            ({"team": "nope"}, "unknown team 'nope'"),
            ({}, "nothing to change"),
        ]:
            refused = admin.post("/admin/keys/ci/update", json=bad)
            assert refused.status_code == 400 and needle in refused.json()["error"]["message"], bad
        assert "unknown key 'nobody'" in admin.post("/admin/keys/nobody/update", json={"org_wide": True}).text
        refused = admin.post("/admin/keys", json={"name": "x", "allow_projects": ["nope"]})
        assert refused.status_code == 400 and "unknown project 'nope'" in refused.text
        assert [k["name"] for k in admin.get("/admin/keys").json()] == ["ci"]  # refusals created nothing


# --- the CLI ---------------------------------------------------------------------------------
def test_keys_create_update_and_list_show_the_scope(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPENDGATE_DB", raising=False)
    db = f"sqlite:///{tmp_path}/x.db"
    _cli(db, "teams", "create", "alpha")
    _cli(db, "teams", "create", "bravo")
    _cli(db, "projects", "create", "alpha-app", "--team", "alpha")
    _cli(db, "projects", "create", "bravo-app", "--team", "bravo")
    _cli(db, "projects", "create", "bravo-tools", "--team", "bravo")

    assert "scope team alpha)" in _cli(db, "keys", "create", "--name", "a", "--project", "alpha-app").stdout
    both = _cli(
        db,
        "keys",
        "create",
        "--name",
        "b",
        "--team",
        "alpha",
        "--allow-project",
        "bravo-app",
        "--allow-project",
        "bravo-tools",
        "--json",
    )
    assert json.loads(both.stdout)["allowed_projects"] == ["bravo-app", "bravo-tools"]
    _cli(db, "keys", "create", "--name", "c", "--org-wide")
    bare = _cli(db, "keys", "create", "--name", "d")
    assert "It may name no project or team" in bare.stderr and "spendgate keys update d --team" in bare.stderr
    _cli(db, "keys", "create", "--name", "e", "--project", "bravo-app", "--lock")

    listed = {k["name"]: k for k in json.loads(_cli(db, "keys", "list", "--json").stdout)}
    assert {name: (k["team"], k["allowed_projects"], k["org_wide"]) for name, k in listed.items()} == {
        "a": ("alpha", [], False),
        "b": ("alpha", ["bravo-app", "bravo-tools"], False),
        "c": (None, [], True),
        "d": (None, [], False),
        "e": ("bravo", [], False),
    }
    table = _cli(db, "keys", "list").stdout
    for scope in ("scope", "team alpha + bravo-app, bravo-tools", "org-wide", "none (unallocated only)", "locked to"):
        assert scope in table, scope

    assert "scope projects bravo-app" in _cli(db, "keys", "update", "d", "--allow-project", "bravo-app").stdout
    for args, needle in [
        (("d", "--team", "alpha", "--no-team"), "contradict"),
        (("d", "--allow-project", "alpha-app", "--disallow-project", "alpha-app"), "both allowed and disallowed"),
        (("d", "--allow-project", "nope"), "unknown project 'nope'"),
        (("d", "--team", "nope"), "unknown team 'nope'"),
        (("d",), "nothing to change"),
        (("nobody", "--org-wide"), "unknown key 'nobody'"),
    ]:
        result = CliRunner().invoke(main, ["keys", "update", *args, "--db", db], catch_exceptions=False)
        assert result.exit_code == 1 and needle in result.output, (args, result.output)
    refused = CliRunner().invoke(main, ["keys", "create", "--name", "f", "--team", "nope", "--db", db])
    assert refused.exit_code == 1 and "unknown team 'nope'" in refused.output and "sg-" not in refused.stdout
    assert json.loads(_cli(db, "keys", "list", "--json").stdout)[3]["allowed_projects"] == ["bravo-app"]
