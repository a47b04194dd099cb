"""`spendgate anomalies …`, `spendgate suspensions …` and their admin API mirror, on both
backends: a scan over history (rollups) finds a three-hour runaway loop, records it once
however often it is run, and the anomaly's status moves as ``record`` allows."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from click.testing import CliRunner

from spendgate.anomalies import synthetic as syn
from spendgate.budgets.model import Scope
from spendgate.cli.main import main
from tests.conftest import Gateway
from tests.test_anomalies_live import SHAPE, _append, _events

ADMIN = "admin-secret-anomalies"
HELLO = [{"role": "user", "content": "x"}]
START = datetime(2026, 10, 3, tzinfo=UTC)
LOOP_AT = START + timedelta(days=20, hours=10)  # a Friday morning


def _cli(gateway: Gateway, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--db", gateway.db_url])
    assert result.exit_code == 0, result.output
    return result.output


def test_scan_list_ack_resolve_and_the_admin_api(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(admin_key=ADMIN, anomaly_interval=0)
    gateway.team("cx")
    gateway.project("support", "cx")
    history = [r for r in syn.synthetic_requests(3, START, 22, SHAPE) if r.at < START + timedelta(days=21)]
    loop = syn.runaway_loop(2, LOOP_AT, 180, Decimal("25"), key="support-bot")
    _append(gateway.store, _events(history, "h") + _events(loop, "loop"))

    _cli(gateway, "anomalies", "rules", "create", "--scope", "key:support-bot", "--suspend")
    found = json.loads(_cli(gateway, "anomalies", "scan", "--since", "2026-10-12", "--until", "2026-10-24", "--json"))
    assert json.loads(_cli(gateway, "suspensions", "list", "--json")) == []  # history suspends nothing
    assert "key:support-bot" in [a["scope"] for a in found]
    again = json.loads(_cli(gateway, "anomalies", "scan", "--since", "2026-10-12", "--until", "2026-10-24", "--json"))
    listed = json.loads(_cli(gateway, "anomalies", "list", "--json"))
    assert len(listed) == len(found) == len(again)  # a second scan records nothing new
    [bot] = [a for a in listed if a["scope"] == "key:support-bot"]
    assert set(bot) >= {"id", "scope", "start", "end", "cost_usd", "expected_usd", "score", "status"}
    assert bot["status"] == "open" and bot["start"] < LOOP_AT.isoformat()[:13] + ":59"
    assert Decimal(bot["cost_usd"]) > 3 * Decimal(bot["expected_usd"])
    assert json.loads(_cli(gateway, "anomalies", "list", "--since", "2026-10-30", "--json")) == []

    assert "acknowledged" in _cli(gateway, "anomalies", "ack", bot["id"])
    assert "resolved" in _cli(gateway, "anomalies", "resolve", bot["id"])
    refused = CliRunner().invoke(main, ["anomalies", "ack", bot["id"], "--db", gateway.db_url])
    assert refused.exit_code != 0 and "resolved" in refused.output

    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        shown = admin.get("/admin/anomalies").json()
        assert [a["status"] for a in shown if a["id"] == bot["id"]] == ["resolved"]
        assert admin.get("/admin/anomalies", params={"since": "nope"}).status_code == 400

        # A suspension by rule and by hand: listed, refused at the gateway, resumed over the admin API.
        _cli(gateway, "anomalies", "rules", "create", "--scope", "key:web", "--suspend")
        assert json.loads(_cli(gateway, "anomalies", "rules", "list", "--json")) == [
            {"scope": "key:support-bot", "suspend": True},
            {"scope": "key:web", "suspend": True},
        ]
        secret = gateway.key("web", project="support")
        gateway.store.suspend_scope(Scope.parse("key:web"))
        assert [s["scope"] for s in json.loads(_cli(gateway, "suspensions", "list", "--json"))] == ["key:web"]
        gateway.wait_for_directory()
        with pytest.raises(openai.PermissionDeniedError) as denied:
            gateway.openai(secret).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        assert denied.value.code == "scope_suspended"
        assert admin.get("/admin/suspensions").json()[0]["scope"] == "key:web"
        assert admin.post("/admin/suspensions/key:web/resume").status_code == 200
        assert admin.post("/admin/suspensions/key:web/resume").status_code == 400
        gateway.wait_for_directory()
        gateway.openai(secret).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        events = gateway.events()
        assert len(events) == len(history) + len(loop) + 1  # the refused request recorded nothing


def test_the_admin_api_mirrors_anomalies_rules(make_gateway: Callable[..., Gateway]) -> None:
    """`anomalies rules create|list|delete` over the admin API: org admins only, scopes checked
    as the CLI checks them (trace:* included), and a rule made there is the CLI's rule."""
    gateway = make_gateway(admin_key=ADMIN, anomaly_interval=0)
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        made = admin.post("/admin/anomaly-rules", json={"scope": "trace:*", "suspend": True})
        assert made.status_code == 201 and made.json() == {"scope": "trace:*", "suspend": True}
        assert admin.post("/admin/anomaly-rules", json={"scope": "feature:summarize"}).status_code == 201
        for bad in ({"scope": "planet:mars"}, {"scope": "trace:*", "suspend": "yes"}, {"suspend": True}, {}):
            refused = admin.post("/admin/anomaly-rules", json=bad)
            assert refused.status_code == 400 and refused.json()["error"]["message"], bad
        listed = admin.get("/admin/anomaly-rules").json()
        assert listed == [{"scope": "feature:summarize", "suspend": False}, {"scope": "trace:*", "suspend": True}]
        assert json.loads(_cli(gateway, "anomalies", "rules", "list", "--json")) == listed
        assert admin.delete("/admin/anomaly-rules/feature:summarize").json() == {
            "scope": "feature:summarize",
            "deleted": True,
        }
        assert admin.delete("/admin/anomaly-rules/feature:summarize").status_code == 400
        assert admin.get("/admin/anomaly-rules").json() == [{"scope": "trace:*", "suspend": True}]
    with httpx.Client(base_url=gateway.url) as anonymous:
        assert anonymous.get("/admin/anomaly-rules").status_code == 401
