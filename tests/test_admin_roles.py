"""The admin API with users: personal tokens and sessions as callers, every route scoped by
the caller's roles (both backends). The admin key stays the superuser."""

from __future__ import annotations

import httpx

from tests.access_support import (
    ADMIN,
    SECRET_PROJECT,
    SECRET_TEAM,
    add_user,
    admin_client,
    logged_in,
    org_with_traffic,
    token_client,
)


def _error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind, response.text
    return response.json()["error"]["message"]


def test_a_viewer_of_one_project_gets_only_that_project_from_every_route(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    org_with_traffic(gateway)
    with admin_client(gateway) as admin:
        for scope in ("project:checkout", f"project:{SECRET_PROJECT}", "team:payments", "org", "key:checkout-key"):
            assert admin.post("/admin/budgets", json={"scope": scope, "limit_usd": "10"}).status_code == 201
    gateway.wait_for_directory()
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    with token_client(gateway, "ann") as ann:
        assert ann.get("/admin/teams").json() == [{"name": "payments", "cost_center": None, "reference": None}]
        assert ann.get("/admin/projects").json() == [{"name": "checkout", "team": "payments"}]
        assert [k["name"] for k in ann.get("/admin/keys").json()] == ["checkout-key"]
        events = ann.get("/admin/events", params={"limit": 100}).json()
        assert len(events) == 2 and {e["project"] for e in events} == {"checkout"}
        for by in ("project", "team", "model", "key", "day", "team,project,customer"):
            report = ann.get("/admin/report", params={"by": by}).json()
            assert report["total_cost_usd"] == "0.00042" and report["total_requests"] == 2, by
        by_team = ann.get("/admin/report", params={"by": "team"}).json()["rows"]
        assert [(r["team"], r["cost_usd"]) for r in by_team] == [("payments", "0.00042")]
        budgets = ann.get("/admin/budgets").json()
        assert sorted(b["scope"] for b in budgets) == ["key:checkout-key", "project:checkout"]
        assert ann.get("/admin/projects/checkout").json() == {"name": "checkout", "team": "payments", "role": "viewer"}
        # A project ann holds no role on is exactly as unknown as one that does not exist.
        hidden = ann.get(f"/admin/projects/{SECRET_PROJECT}")
        missing = ann.get("/admin/projects/no-such-project")
        assert _error(hidden, 404, "not_found_error") == f"unknown project {SECRET_PROJECT!r}"
        assert _error(missing, 404, "not_found_error") == "unknown project 'no-such-project'"
        everything = " ".join(
            ann.get(path).text
            for path in (
                "/admin/teams",
                "/admin/projects",
                "/admin/keys",
                "/admin/events",
                "/admin/budgets",
                "/admin/me",
            )
        ) + " ".join(ann.get("/admin/report", params={"by": by}).text for by in ("project", "team", "key"))
        assert SECRET_PROJECT not in everything and SECRET_TEAM not in everything and "ranker-key" not in everything

        # A viewer changes nothing.
        _error(ann.post("/admin/keys", json={"name": "k", "project": "checkout"}), 403, "permission_error")
        _error(
            ann.post("/admin/budgets", json={"scope": "project:checkout", "limit_usd": "1"}), 403, "permission_error"
        )
        _error(ann.post("/admin/keys/checkout-key/revoke"), 403, "permission_error")
        _error(ann.post("/admin/teams", json={"name": "new-team"}), 403, "permission_error")
        _error(ann.post("/admin/keys", json={"name": "k", "project": SECRET_PROJECT}), 404, "not_found_error")
        _error(ann.post("/admin/keys/ranker-key/revoke"), 404, "not_found_error")
        grant = {"user": "ann", "project": "checkout", "role": "manager"}
        _error(ann.post("/admin/grants", json=grant), 403, "permission_error")

    # The admin key still sees and does everything.
    with admin_client(gateway) as admin:
        assert len(admin.get("/admin/projects").json()) == 2
        assert admin.get("/admin/report").json()["total_cost_usd"] == "0.00252"
        assert len(admin.get("/admin/budgets").json()) == 5
        assert admin.post("/admin/keys/ranker-key/revoke").json()["revoked"] is True


def test_a_manager_manages_their_project_and_nothing_else(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    org_with_traffic(gateway)
    add_user(gateway, "bob", ("project", "checkout", "manager"))
    add_user(gateway, "dave")
    with token_client(gateway, "bob") as bob:
        created = bob.post("/admin/keys", json={"name": "bob-key", "project": "checkout"})
        assert created.status_code == 201 and created.json()["locked"] is True
        _error(bob.post("/admin/keys", json={"name": "k2", "project": SECRET_PROJECT}), 404, "not_found_error")
        _error(bob.post("/admin/keys", json={"name": "k3"}), 403, "permission_error")
        unlocked = {"name": "k4", "project": "checkout", "lock": False}
        _error(bob.post("/admin/keys", json=unlocked), 403, "permission_error")
        assert bob.post("/admin/keys/bob-key/revoke").json()["revoked"] is True
        _error(bob.post("/admin/keys/ranker-key/revoke"), 404, "not_found_error")

        budget = bob.post("/admin/budgets", json={"scope": "project:checkout", "limit_usd": "5"})
        assert budget.status_code == 201
        secret_budget = {"scope": f"project:{SECRET_PROJECT}", "limit_usd": "5"}
        _error(bob.post("/admin/budgets", json=secret_budget), 404, "not_found_error")
        _error(bob.post("/admin/budgets", json={"scope": "org", "limit_usd": "5"}), 403, "permission_error")
        _error(bob.post("/admin/budgets", json={"scope": "team:payments", "limit_usd": "5"}), 403, "permission_error")

        # Members: bob gives dave a role on checkout, and nowhere else.
        grant = {"user": "dave", "project": "checkout", "role": "viewer"}
        assert bob.post("/admin/grants", json=grant).status_code == 201
        assert bob.get("/admin/grants", params={"project": "checkout"}).json() == [
            {"user": "bob", "project": "checkout", "role": "manager"},
            {"user": "dave", "project": "checkout", "role": "viewer"},
        ]
        elsewhere = {"user": "dave", "project": SECRET_PROJECT, "role": "viewer"}
        _error(bob.post("/admin/grants", json=elsewhere), 404, "not_found_error")
        _error(bob.get("/admin/grants", params={"project": SECRET_PROJECT}), 404, "not_found_error")
        _error(bob.get("/admin/users"), 403, "permission_error")
        _error(bob.post("/admin/users", json={"name": "eve", "password": "long enough"}), 403, "permission_error")
    with token_client(gateway, "dave") as dave:
        assert [p["name"] for p in dave.get("/admin/projects").json()] == ["checkout"]
    with token_client(gateway, "bob") as bob:
        revoked = bob.post("/admin/grants/revoke", json={"user": "dave", "project": "checkout"})
        assert revoked.status_code == 201
    with token_client(gateway, "dave") as dave:
        assert dave.get("/admin/projects").json() == []
        assert dave.get("/admin/report").json()["rows"] == []


def test_a_team_role_covers_the_teams_projects(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    org_with_traffic(gateway)
    add_user(gateway, "tom", ("team", SECRET_TEAM, "manager"))
    with token_client(gateway, "tom") as tom:
        assert [p["name"] for p in tom.get("/admin/projects").json()] == [SECRET_PROJECT]
        assert tom.get("/admin/report").json()["total_cost_usd"] == "0.0021"
        made = tom.post("/admin/projects", json={"name": "new-ranker", "team": SECRET_TEAM})
        assert made.status_code == 201
        _error(tom.post("/admin/projects", json={"name": "p2", "team": "payments"}), 404, "not_found_error")
        # A project made later is covered at once.
        assert [p["name"] for p in tom.get("/admin/projects").json()] == ["new-ranker", SECRET_PROJECT]
        assert tom.post("/admin/budgets", json={"scope": f"team:{SECRET_TEAM}", "limit_usd": "3"}).status_code == 201


def test_tokens_and_sessions_authenticate_and_sessions_need_csrf_to_change_anything(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    org_with_traffic(gateway)
    add_user(gateway, "bob", ("project", "checkout", "manager"))
    with logged_in(gateway, "bob") as browser:
        me = browser.get("/admin/me").json()
        assert me["name"] == "bob" and me["projects"] == {"checkout": "manager"} and me["csrf_token"]
        refused = browser.post("/admin/tokens", json={"name": "laptop"})
        assert "x-csrf-token" in _error(refused, 403, "permission_error")
        wrong = browser.post("/admin/tokens", json={"name": "laptop"}, headers={"x-csrf-token": "0" * 64})
        _error(wrong, 403, "permission_error")
        made = browser.post("/admin/tokens", json={"name": "laptop"}, headers={"x-csrf-token": me["csrf_token"]})
        assert made.status_code == 201
        secret = made.json()["token"]
        assert secret.startswith("sgu-")
        assert [t["name"] for t in browser.get("/admin/tokens").json()] == ["laptop"]
        assert secret not in browser.get("/admin/tokens").text

    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {secret}"}) as token:
        assert token.get("/admin/me").json()["name"] == "bob"
        # Token calls carry no cookie a browser could send for them: no CSRF token needed.
        assert token.post("/admin/keys", json={"name": "from-token", "project": "checkout"}).status_code == 201
        assert token.post("/admin/tokens/laptop/revoke").json()["revoked"] is True
        _error(token.get("/admin/me"), 401, "authentication_error")
    # A token is not a gateway key, and a gateway key opens no admin route.
    unknown_token = httpx.get(f"{gateway.url}/admin/me", headers={"authorization": "Bearer sgu-nope"})
    _error(unknown_token, 401, "authentication_error")
    _error(
        httpx.get(f"{gateway.url}/admin/me", cookies={"spendgate_session": "forged.value"}),
        401,
        "authentication_error",
    )


def test_a_disabled_or_deleted_user_is_locked_out_at_once(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    add_user(gateway, "ann")
    with token_client(gateway, "ann") as ann, admin_client(gateway) as admin:
        assert ann.get("/admin/me").status_code == 200
        assert admin.post("/admin/users/ann/disable").json()["disabled"] is True
        _error(ann.get("/admin/me"), 401, "authentication_error")
        assert admin.post("/admin/users/ann/enable").status_code == 201
        assert ann.get("/admin/me").status_code == 200
        assert admin.delete("/admin/users/ann").status_code == 200
        _error(ann.get("/admin/me"), 401, "authentication_error")


def test_users_are_managed_through_the_api_by_admins(make_gateway) -> None:
    gateway = make_gateway(admin_key=ADMIN)
    org_with_traffic(gateway)
    with admin_client(gateway) as admin:
        made = admin.post("/admin/users", json={"name": "ann", "password": "ann's password"})
        assert made.status_code == 201 and made.json() == {**made.json(), "name": "ann", "admin": False}
        assert "password" not in made.text and "argon2" not in made.text
        short = admin.post("/admin/users", json={"name": "bob", "password": "short"})
        assert "at least 8" in _error(short, 400, "invalid_request_error")
        grant = {"user": "ann", "team": "payments", "role": "viewer"}
        assert admin.post("/admin/grants", json=grant).status_code == 201
        [ann] = admin.get("/admin/users").json()
        assert ann["grants"] == [{"user": "ann", "team": "payments", "role": "viewer"}]
        _error(admin.get("/admin/tokens"), 400, "invalid_request_error")  # the admin key is no user
    with token_client(gateway, "ann") as ann_client:
        # Her own password: only with the current one.
        change = {"password": "a new password"}
        _error(ann_client.post("/admin/users/ann/password", json=change), 403, "permission_error")
        change["current_password"] = "ann's password"
        assert ann_client.post("/admin/users/ann/password", json=change).status_code == 201
        _error(ann_client.post("/admin/users/bob/password", json=change), 403, "permission_error")


def test_users_work_without_an_admin_key(make_gateway) -> None:
    gateway = make_gateway()  # no SPENDGATE_ADMIN_KEY: the admin key is off, users are not
    org_with_traffic(gateway)
    add_user(gateway, "root", admin=True)
    with token_client(gateway, "root") as root:
        assert len(root.get("/admin/projects").json()) == 2
    off = httpx.get(f"{gateway.url}/admin/teams", headers={"authorization": "Bearer not-a-user-token"})
    assert "SPENDGATE_ADMIN_KEY" in _error(off, 403, "permission_error")
