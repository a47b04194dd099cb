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
                "team": "payments",  # its project's
                "allowed_projects": [],
                "org_wide": False,
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
        key = gateway.key("ops-key", team="ops")
        gateway.openai(key, default_headers={"x-spendgate-team": "ops"}).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim input=1000 output=100]]"}]
        )
        [status] = admin.get("/admin/budgets").json()
    assert status["name"] == "team-ops-week" and status["scope"] == "team:ops"
    assert status["spent_usd"] == "0.00021"  # 1000 x $0.15 + 100 x $0.60 per million
    assert status["reserved_usd"] == "0"
    assert status["remaining_usd"] == "2.49979"


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == ("invalid_request_error" if status == 400 else "authentication_error")
    return error["message"]


def test_admin_events_limit_is_bounded(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    key = gateway.key("k")
    for _ in range(3):
        gateway.openai(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    gateway.flush()
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        assert len(admin.get("/admin/events", params={"limit": "2"}).json()) == 2
        assert len(admin.get("/admin/events", params={"limit": "10000"}).json()) == 3
        assert len(admin.get("/admin/events").json()) == 3  # default 50
        for bad in ("-1", "0", "10001", str(2**64), "99999999999999999999999", "1.5", "abc", "", " 5", "٣"):
            message = _error(admin.get("/admin/events", params={"limit": bad}), 400)
            assert "limit must be a whole number from 1 to 10,000" in message, bad


def test_admin_query_parameters_are_checked_on_every_route(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        assert "unknown query parameter 'limt'" in _error(admin.get("/admin/events?limt=5"), 400)
        assert "more than once" in _error(admin.get("/admin/events?limit=1&limit=100000"), 400)
        assert "unknown query parameter 'limit'" in _error(admin.get("/admin/teams?limit=1"), 400)
        assert "unknown query parameter" in _error(admin.get("/admin/report?by=team&group=x"), 400)
        assert "unknown query parameter" in _error(admin.post("/admin/teams?x=1", json={"name": "a"}), 400)
        for day in ("2025-3-1", "20250301", "2025-W10-1", "yesterday"):
            assert "since must be a day, YYYY-MM-DD" in _error(admin.get(f"/admin/report?since={day}"), 400), day
        assert admin.get("/admin/report?by=team&since=2025-03-01&until=2025-03-31").status_code == 200
        assert admin.get("/admin/teams").json() == []  # the refused POST created nothing


def test_admin_api_takes_only_a_bearer_admin_key(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    for accepted in (f"Bearer {ADMIN}", f"bearer {ADMIN}", f"BEARER {ADMIN}"):
        assert httpx.get(f"{gateway.url}/admin/teams", headers={"authorization": accepted}).status_code == 200
    for refused in (
        f"Basic1 {ADMIN}",  # any seven characters used to pass for "Bearer "
        f"Token  {ADMIN}",
        f"xxxxxxx{ADMIN}",
        f"Basic {ADMIN}",
        f"Bearer{ADMIN}",
        f"Bearer {ADMIN}x",
        f"Bearer {ADMIN[:-1]}",
        "Bearer",
        ADMIN,
    ):
        response = httpx.get(f"{gateway.url}/admin/teams", headers={"authorization": refused})
        assert "Authorization: Bearer" in _error(response, 401), refused
