"""The pure rules of access: what a user's grants let them see and manage, login throttling,
signed session cookies and CSRF tokens, password hashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from spendgate.access import throttle
from spendgate.access.model import AccessError, Grant, User, Viewer
from spendgate.access.passwords import Passwords, check_password
from spendgate.access.sessions import SessionKeys, SessionPolicy
from spendgate.access.visibility import Visibility
from spendgate.attribution.model import GatewayKey, Project
from spendgate.budgets.model import Scope

PROJECTS = [Project("checkout", "payments"), Project("refunds", "payments"), Project("ranker", "search")]


def viewer(*grants: tuple[str, str, str]) -> Viewer:
    return Viewer.of_user(User("ann"), [Grant("ann", kind, name, role) for kind, name, role in grants], PROJECTS)


def test_a_project_role_covers_that_project_only() -> None:
    v = viewer(("project", "checkout", "viewer"))
    assert v.visibility == Visibility(projects=frozenset({"checkout"}))
    assert v.sees_project("checkout") and not v.sees_project("refunds") and not v.sees_project(None)
    assert not v.manages_project("checkout")
    assert v.visible_teams() == frozenset({"payments"})  # its project's team is shown with it
    assert not v.manages_team("payments")


def test_a_team_role_covers_every_project_of_the_team_and_its_project_less_spend() -> None:
    v = viewer(("team", "payments", "manager"), ("project", "ranker", "viewer"))
    assert v.visibility == Visibility(
        projects=frozenset({"checkout", "refunds", "ranker"}), teams=frozenset({"payments"})
    )
    assert v.manages_project("checkout") and v.manages_project("refunds") and not v.manages_project("ranker")
    assert v.manages_team("payments") and not v.manages_team("search")
    assert v.visibility.sees(None, "payments") and not v.visibility.sees(None, "search")
    assert not v.visibility.sees(None, None)  # unallocated: admins only


def test_the_higher_of_two_roles_on_a_project_applies() -> None:
    v = viewer(("team", "payments", "viewer"), ("project", "checkout", "manager"))
    assert v.manages_project("checkout") and not v.manages_project("refunds")
    v = viewer(("team", "payments", "manager"), ("project", "checkout", "viewer"))
    assert v.manages_project("checkout")


def test_admins_and_the_admin_key_see_everything() -> None:
    for v in (Viewer.of_user(User("root", is_admin=True), [], PROJECTS), Viewer.superuser()):
        assert v.visibility is None and v.visible_projects() is None and v.visible_teams() is None
        assert v.sees_project("anything") and v.manages_team("anything")
        assert v.manages_scope(Scope.parse("org"), {}) and v.budget_scopes([]) is None
    assert Viewer.superuser().is_user is False


def test_budget_scopes_a_manager_may_set_and_see() -> None:
    keys = {
        "locked": GatewayKey("locked", "h1", "sg-1", project="checkout", locked=True),
        "open": GatewayKey("open", "h2", "sg-2", project="checkout"),
        "other": GatewayKey("other", "h3", "sg-3", project="ranker", locked=True),
    }
    v = viewer(("project", "checkout", "manager"))
    allowed = [s for s in ("project:checkout", "key:locked") if v.manages_scope(Scope.parse(s), keys)]
    assert allowed == ["project:checkout", "key:locked"]
    for refused in ("project:ranker", "team:payments", "key:open", "key:other", "org", "customer:acme", "tag:a=b"):
        assert not v.manages_scope(Scope.parse(refused), keys), refused
    assert v.budget_scopes(keys.values()) == frozenset({"project:checkout", "key:locked"})
    assert viewer(("project", "checkout", "viewer")).budget_scopes(keys.values()) == v.budget_scopes(keys.values())


def test_grants_are_checked() -> None:
    with pytest.raises(AccessError, match="unknown role"):
        Grant("ann", "project", "checkout", "owner")
    with pytest.raises(AccessError, match="project or a team"):
        Grant("ann", "org", "x", "viewer")


def test_managers_grant_on_what_they_manage() -> None:
    v = viewer(("project", "checkout", "manager"), ("team", "search", "viewer"))
    assert v.may_grant("project", "checkout")
    assert not v.may_grant("project", "ranker") and not v.may_grant("team", "search")
    assert not v.may_grant("team", "payments")
    assert v.sees_grant_target("team", "search") and not v.sees_grant_target("team", "payments")


# --- throttling ------------------------------------------------------------------------------------
def test_login_lockout_doubles_after_four_failures_up_to_an_hour() -> None:
    assert [throttle.lockout(n).total_seconds() for n in range(1, 9)] == [0, 0, 0, 0, 30, 60, 120, 240]
    assert throttle.lockout(40) == timedelta(hours=1)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert throttle.wait_seconds([(4, now)], now) == 0
    assert throttle.wait_seconds([(5, now - timedelta(seconds=10))], now) == 20
    assert throttle.wait_seconds([(5, now - timedelta(seconds=30))], now) == 0
    # The longest wait of the user's and the address's applies; a stale count is forgotten.
    assert throttle.wait_seconds([(5, now), (7, now - timedelta(seconds=0.5))], now) == 120
    assert throttle.wait_seconds([(30, now - timedelta(days=2))], now) == 0


# --- cookies and CSRF ------------------------------------------------------------------------------
def test_session_cookies_are_signed_and_csrf_tokens_bound_to_their_session() -> None:
    keys = SessionKeys("server-secret")
    cookie = keys.sign("session-id")
    assert keys.unsign(cookie) == "session-id"
    assert keys.unsign(cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None
    assert keys.unsign("session-id") is None and keys.unsign(None) is None and keys.unsign("x" * 600) is None
    assert SessionKeys("another-secret").unsign(cookie) is None

    token = keys.csrf_token("session-id")
    assert keys.csrf_ok("session-id", token)
    assert not keys.csrf_ok("other-session", token)
    assert not keys.csrf_ok("session-id", None) and not keys.csrf_ok(None, token)
    assert not keys.csrf_ok("session-id", token.upper() if token != token.upper() else token + "0")
    assert not keys.csrf_ok("session-id", "é")  # not ASCII: refused, not an exception
    # A login form's token is not a session's.
    assert not keys.csrf_ok("session-id", keys.csrf_token("session-id", "login"))


def test_the_cookie_is_http_only_lax_and_secure_behind_https() -> None:
    plain = SessionPolicy(timedelta(hours=2), timedelta(hours=12), secure=False)
    assert plain.cookie_name == "spendgate_session"
    assert plain.cookie_options() == {
        "max_age": 43200,
        "path": "/",
        "secure": False,
        "httponly": True,
        "samesite": "lax",
    }
    https = SessionPolicy(timedelta(hours=2), timedelta(hours=12), secure=True)
    assert https.cookie_name == "__Host-spendgate_session" and https.cookie_options()["secure"] is True


# --- passwords -------------------------------------------------------------------------------------
def test_passwords_are_argon2_hashes() -> None:
    passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    hashed = passwords.hash("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert passwords.verify(hashed, "correct horse")
    assert not passwords.verify(hashed, "wrong horse")
    assert not passwords.verify("not a hash", "correct horse")
    assert not passwords.verify(hashed, "x" * 2000)
    assert passwords.needs_rehash(hashed) is False
    assert Passwords().needs_rehash(hashed) is True  # weaker than today's default parameters
    for bad in ("short", "x" * 1025, "nul\x00in it"):
        with pytest.raises(AccessError):
            check_password(bad)
