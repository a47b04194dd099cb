"""The admin API mirrors the CLI, behind SPENDGATE_ADMIN_KEY."""

from __future__ import annotations

import httpx

ADMIN = "admin-secret-for-tests"


def test_admin_api_manages_teams_projects_keys_and_reads_reports(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"})
    with admin:
        assert admin.post("/admin/teams", json={"name": "payments", "cost_center": "CC-9"}).status_code == 201
        assert admin.post("/admin/projects", json={"name": "checkout", "team": "payments"}).status_code == 201
        duplicate = admin.post("/admin/teams", json={"name": "payments"})
        assert duplicate.status_code == 400 and "already exists" in duplicate.json()["error"]["message"]
        created = admin.post("/admin/keys", json={"name": "web", "project": "checkout", "lock": True})
        assert created.status_code == 201
        secret = created.json()["key"]
        assert secret.startswith("sg-") and created.json()["locked"] is True

        # The new key works at once, attributed to its locked project.
        gateway.openai(secret).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=100 output=10]]"}]
        )
        gateway.flush()
        report = admin.get("/admin/report", params={"by": "team,project"}).json()
        assert [(r["team"], r["project"], r["requests"]) for r in report["rows"]] == [("payments", "checkout", 1)]
        events = admin.get("/admin/events", params={"limit": 5}).json()
        assert events[0]["key"] == "web"

        listed = admin.get("/admin/keys").json()
        assert listed == [
            {
                "name": "web",
                "prefix": listed[0]["prefix"],
                "project": "checkout",
                "locked": True,
                "environment": "production",
                "revoked": False,
            }
        ]
        assert secret not in str(listed)
        assert admin.post("/admin/keys/web/revoke").json()["revoked"] is True
        bad_dim = admin.get("/admin/report", params={"by": "colour"})
        assert bad_dim.status_code == 400 and "unknown dimension" in bad_dim.json()["error"]["message"]

    assert httpx.get(f"{gateway.url}/admin/teams").status_code == 401
    assert httpx.get(f"{gateway.url}/admin/teams", headers={"authorization": "Bearer wrong"}).status_code == 401


def test_admin_api_is_off_without_a_key(gateway) -> None:
    response = httpx.get(f"{gateway.url}/admin/teams")
    assert response.status_code == 403
    assert "SPENDGATE_ADMIN_KEY" in response.json()["error"]["message"]


def test_admin_api_budgets_show_live_reservations(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"})
    with admin:
        gateway.team("ops")
        created = admin.post("/admin/budgets", json={"scope": "team:ops", "limit_usd": "2.50", "period": "week"})
        assert created.status_code == 201 and created.json()["name"] == "team-ops-week"
        bad = admin.post("/admin/budgets", json={"scope": "team:nobody", "limit_usd": "1"})
        assert bad.status_code == 400 and "unknown team" in bad.json()["error"]["message"]
        gateway.wait_for_directory()
        key = gateway.key("ops-key")
        gateway.openai(key, default_headers={"x-spendgate-team": "ops"}).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=1000 output=100]]"}]
        )
        [status] = admin.get("/admin/budgets").json()
    assert status["name"] == "team-ops-week" and status["scope"] == "team:ops"
    assert status["spent_usd"] == "0.00021"  # 1000 x $0.15 + 100 x $0.60 per million
    assert status["reserved_usd"] == "0"
    assert status["remaining_usd"] == "2.49979"
