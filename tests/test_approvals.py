"""Approval instead of a hard stop, end to end through the SDKs on both backends: an
exhausted `--on-exhausted approve` budget answers 402 with one pending approval request per
window, an approver grants extra spend with a reason (CLI), and requests pass again."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import openai
import pytest
from click.testing import CliRunner

from spendgate.cli.main import main
from spendgate.ledger.events import UsageEvent
from tests.access_support import add_user, logged_in
from tests.conftest import Gateway

HELLO = [{"role": "user", "content": "hello"}]
ADMIN = "admin-secret-approvals"


def _cli(gateway: Gateway, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--db", gateway.db_url])
    assert result.exit_code == 0, result.output
    return result.output


def _refused(client: openai.OpenAI) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=50)
    assert refused.value.status_code == 402
    return refused.value


def test_an_exhausted_budget_asks_for_approval(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    gateway.team("cx")
    gateway.project("support", "cx")
    secret = gateway.key("bot", project="support")
    spent = UsageEvent(
        id="spent-earlier",
        ts=datetime.now(UTC),
        provider="openai",
        model="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        stream=False,
        status="ok",
        http_status=200,
        team="cx",
        project="support",
        key="bot",
        cost_usd=Decimal("1"),
    )
    gateway.store.append_events([spent])
    _cli(
        gateway, "budgets", "create", "--scope", "team:cx", "--limit", "1", "--on-exhausted", "approve", "--name", "cx"
    )
    gateway.wait_for_directory()
    client = gateway.openai(secret)

    first = _refused(client)
    assert first.code == "approval_required"
    body: dict = first.body  # type: ignore[assignment]
    approval_id = body["approval"]["id"]
    assert approval_id in first.message and body["budget"]["reason"] == "exhausted"
    assert _refused(client).body["approval"]["id"] == approval_id  # type: ignore[index]  # one per window
    [pending] = json.loads(_cli(gateway, "approvals", "list", "--json"))
    assert pending["id"] == approval_id and pending["status"] == "pending" and pending["budget"] == "cx"

    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        assert [a["id"] for a in admin.get("/admin/approvals", params={"status": "pending"}).json()] == [approval_id]
        no_reason = admin.post(f"/admin/approvals/{approval_id}/approve", json={"extra_usd": "5"})
        assert no_reason.status_code == 400
        not_money = admin.post(f"/admin/approvals/{approval_id}/approve", json={"extra_usd": "lots", "reason": "x"})
        assert not_money.status_code == 400
    for extra, reason, problem in (("1e12", "x", "at most"), ("5", "x" * 1001, "longer than")):
        bounded = CliRunner().invoke(
            main, ["approvals", "approve", approval_id, "--extra", extra, "--reason", reason, "--db", gateway.db_url]
        )
        assert bounded.exit_code != 0 and problem in bounded.output  # and the request stays pending
    _cli(gateway, "approvals", "approve", approval_id, "--extra", "5", "--reason", "incident INC-42 triage")
    gateway.wait_for_directory()
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=50)
    assert answer.choices
    [approved] = json.loads(_cli(gateway, "approvals", "list", "--status", "approved", "--json"))
    assert approved["extra_usd"] == "5" and approved["reason"] == "incident INC-42 triage"
    again = CliRunner().invoke(main, ["approvals", "deny", approval_id, "--db", gateway.db_url])
    assert again.exit_code != 0 and "already approved" in again.output
    bad = CliRunner().invoke(
        main, ["approvals", "approve", approval_id, "--extra", "-1", "--reason", "x", "--db", gateway.db_url]
    )
    assert bad.exit_code != 0

    # A plain blocking budget still refuses without an approval request.
    _cli(gateway, "budgets", "create", "--scope", "project:support", "--limit", "1", "--name", "support")
    gateway.wait_for_directory()
    plain = _refused(client)
    assert plain.code != "approval_required"
    assert len(json.loads(_cli(gateway, "approvals", "list", "--json"))) == 1


GPT4O_FULL = [{"role": "user", "content": f"[[sim output={16_384}]] write at length"}]


def test_approved_extra_spend_shows_everywhere_and_is_spent_to_the_new_limit(
    make_gateway: Callable[..., Gateway],
) -> None:
    """402 approval_required → approve $0.50 extra → requests pass → budgets status, the admin
    API and forecast show the extra and the effective limit → exhausted again at $1.50."""
    gateway = make_gateway(admin_key=ADMIN)
    gateway.team("cx")
    gateway.project("support", "cx")
    secret = gateway.key("bot", project="support")
    gateway.store.append_events(
        [
            UsageEvent(
                id="spent-earlier",
                ts=datetime.now(UTC),
                provider="openai",
                model="gpt-4o",
                endpoint="/v1/chat/completions",
                stream=False,
                status="ok",
                http_status=200,
                team="cx",
                project="support",
                key="bot",
                cost_usd=Decimal("1"),
            )
        ]
    )
    _cli(
        gateway, "budgets", "create", "--scope", "team:cx", "--limit", "1", "--on-exhausted", "approve", "--name", "cx"
    )
    gateway.wait_for_directory()
    client = gateway.openai(secret)
    first = _refused(client)
    assert first.code == "approval_required"
    first_id = first.body["approval"]["id"]  # type: ignore[index]
    assert first.body["budget"]["effective_limit_usd"] == "1"  # type: ignore[index]

    _cli(gateway, "approvals", "approve", first_id, "--extra", "0.5", "--reason", "launch week")
    gateway.wait_for_directory()
    # gpt-4o without max_tokens, each writing its whole 16,384 tokens (about $0.164): the extra
    # $0.50 takes three, then what is left is less than the cheapest request.
    passed = 0
    for _ in range(10):
        try:
            client.chat.completions.create(model="gpt-4o", messages=GPT4O_FULL)
        except openai.APIStatusError as refused:
            assert refused.status_code == 402
            again = refused
            break
        passed += 1
    else:
        pytest.fail("the budget was never exhausted again")
    assert passed == 3
    assert again.code == "approval_required"
    body: dict = again.body  # type: ignore[assignment]
    assert body["approval"]["id"] != first_id  # a new request, for more
    assert body["budget"]["reason"] == "exhausted"
    assert (body["budget"]["limit_usd"], body["budget"]["approved_extra_usd"]) == ("1", "0.5")
    assert body["budget"]["effective_limit_usd"] == "1.5"
    assert "$1.5 limit ($1 + $0.5 approved)" in again.message
    gateway.flush()
    spent = Decimal(body["budget"]["spent_usd"])
    assert Decimal("1.4") < spent <= Decimal("1.5")

    [status] = json.loads(_cli(gateway, "budgets", "status", "--json"))
    assert (status["limit_usd"], status["approved_extra_usd"], status["effective_limit_usd"]) == ("1", "0.5", "1.5")
    assert Decimal(status["spent_usd"]) == spent
    assert Decimal(status["remaining_usd"]) == Decimal("1.5") - spent
    forecast = status["forecast"]
    assert Decimal(forecast["low_usd"]) <= Decimal(forecast["projected_usd"]) <= Decimal(forecast["high_usd"])
    assert Decimal(forecast["projected_usd"]) >= spent
    table = _cli(gateway, "budgets", "status", "cx")
    assert "effective" in table and "1.5" in table
    unknown = CliRunner().invoke(main, ["budgets", "status", "nope", "--db", gateway.db_url])
    assert unknown.exit_code != 0 and "unknown budget 'nope'" in unknown.output

    [listed] = json.loads(_cli(gateway, "budgets", "list", "--json"))
    assert (listed["approved_extra_usd"], listed["effective_limit_usd"]) == ("0.5", "1.5")
    [row] = json.loads(_cli(gateway, "forecast", "--json"))
    assert (row["limit_usd"], row["approved_extra_usd"], row["effective_limit_usd"]) == ("1", "0.5", "1.5")
    assert Decimal(row["spent_usd"]) == spent
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        [live] = admin.get("/admin/budgets").json()
    assert (live["approved_extra_usd"], live["effective_limit_usd"]) == ("0.5", "1.5")
    assert Decimal(live["remaining_usd"]) == Decimal("1.5") - spent

    # The dashboard's budgets page: its table (and its CSV) show both figures.
    add_user(gateway, "finance-admin", admin=True)
    with logged_in(gateway, "finance-admin") as browser:
        page = browser.get("/ui/budgets")
        assert page.status_code == 200 and "effective limit (USD)" in page.text
        [csv_row] = list(csv.DictReader(io.StringIO(browser.get("/ui/budgets", params={"csv": "budgets"}).text)))
    assert (csv_row["limit_usd"], csv_row["approved_extra_usd"], csv_row["effective_limit_usd"]) == ("1", "0.5", "1.5")
