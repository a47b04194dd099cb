"""Approval instead of a hard stop, end to end through the SDKs on both backends: an
exhausted `--on-exhausted approve` budget answers 402 with one pending approval request per
window, an approver grants extra spend with a reason (CLI), and requests pass again."""

from __future__ import annotations

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
