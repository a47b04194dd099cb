"""`spendgate users …` on both backends, driven through click's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spendgate.access.authenticator import Authenticator
from spendgate.access.sessions import SessionPolicy
from spendgate.cli import main
from spendgate.ledger.store import open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPENDGATE_DB", raising=False)
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_db")()
    return f"sqlite:///{tmp_path}/x.db"


@pytest.fixture
def store(db: str) -> Iterator[Any]:
    ok(db, "teams", "create", "payments")
    ok(db, "projects", "create", "checkout", "--team", "payments")
    opened = open_store(db)
    yield opened
    opened.close()


def run(db: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--db", db], input=stdin, catch_exceptions=False)


def ok(db: str, *args: str, stdin: str | None = None) -> Result:
    result = run(db, *args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result


def authenticator(store: Any) -> Authenticator:
    policy = SessionPolicy(timedelta(hours=1), timedelta(hours=2), secure=False)
    return Authenticator(store, policy, clock=lambda: datetime.now(UTC), secret_key="k")


def test_users_are_created_granted_listed_and_deleted(db: str, store: Any) -> None:
    ok(db, "users", "create", "root", "--admin", "--password-stdin", stdin="root password 1\n")
    made = json.loads(ok(db, "users", "create", "ann", "--password-stdin", "--json", stdin="ann password 1\n").output)
    assert made == {**made, "name": "ann", "admin": False, "disabled": False, "grants": []}
    auth = authenticator(store)
    # The line ending is not part of the password; the hash is argon2 and never printed.
    assert auth.login("ann", "ann password 1", "127.0.0.1").ok
    assert not auth.login("ann", "ann password 1\n", "127.0.0.1").ok
    assert store.user_and_password_hash("ann")[1].startswith("$argon2id$")

    ok(db, "users", "grant", "ann", "--project", "checkout", "--role", "viewer")
    ok(db, "users", "grant", "ann", "--team", "payments", "--role", "manager")
    listed = json.loads(ok(db, "users", "list", "--json").output)
    assert [(u["name"], u["admin"]) for u in listed] == [("ann", False), ("root", True)]
    assert listed[0]["grants"] == [
        {"user": "ann", "project": "checkout", "role": "viewer"},
        {"user": "ann", "team": "payments", "role": "manager"},
    ]
    table = ok(db, "users", "list").output
    assert "viewer of project checkout" in table and "argon2" not in table
    ok(db, "users", "revoke", "ann", "--team", "payments")
    assert [g.kind for g in store.list_grants("ann")] == ["project"]

    refused = run(db, "users", "grant", "ann", "--project", "nope", "--role", "viewer")
    assert refused.exit_code == 1 and "unknown project 'nope'" in refused.output
    both = run(db, "users", "grant", "ann", "--project", "checkout", "--team", "payments", "--role", "viewer")
    assert both.exit_code == 2 and "exactly one of --project or --team" in both.output
    short = run(db, "users", "create", "bob", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    duplicate = run(db, "users", "create", "ann", "--password-stdin", stdin="another password\n")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    bad_name = run(db, "users", "create", "-x", "--password-stdin", stdin="long enough pw\n")
    assert bad_name.exit_code != 0

    ok(db, "users", "delete", "ann")
    assert [u.name for u in store.list_users()] == ["root"] and store.list_grants() == []


def test_set_password_ends_sessions_and_disable_locks_out(db: str, store: Any) -> None:
    ok(db, "users", "create", "ann", "--password-stdin", stdin="first password\n")
    auth = authenticator(store)
    outcome = auth.login("ann", "first password", "127.0.0.1")
    assert auth.session(outcome.cookie) is not None
    ok(db, "users", "set-password", "ann", "--password-stdin", stdin="second password\n")
    assert auth.session(outcome.cookie) is None
    assert not auth.login("ann", "first password", "127.0.0.1").ok
    assert auth.login("ann", "second password", "127.0.0.1").ok
    ok(db, "users", "disable", "ann")
    assert not auth.login("ann", "second password", "127.0.0.2").ok
    ok(db, "users", "enable", "ann")
    assert auth.login("ann", "second password", "127.0.0.3").ok


def test_personal_tokens_are_shown_once_and_revocable(db: str, store: Any) -> None:
    ok(db, "users", "create", "ann", "--password-stdin", stdin="ann password 1\n")
    made = json.loads(ok(db, "users", "tokens", "create", "ann", "--name", "ci", "--json").output)
    secret = made["token"]
    assert secret.startswith("sgu-") and made["prefix"] == secret[:10] + "…"
    plain = ok(db, "users", "tokens", "create", "ann", "--name", "laptop").output
    assert "sgu-" in plain
    auth = authenticator(store)
    assert auth.token_viewer(secret).name == "ann"
    listed = ok(db, "users", "tokens", "list", "ann", "--json").output
    assert secret not in listed and [t["name"] for t in json.loads(listed)] == ["ci", "laptop"]
    assert json.loads(listed)[0]["last_used_at"] is not None  # the token was used just now
    ok(db, "users", "tokens", "revoke", "ann", "ci")
    assert auth.token_viewer(secret) is None
    missing = run(db, "users", "tokens", "revoke", "ann", "nope")
    assert missing.exit_code == 1 and "no token named 'nope'" in missing.output


def test_users_commands_need_an_existing_ledger_except_create(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = run(f"sqlite:///{tmp_path}/none.db", "users", "list")
    assert missing.exit_code == 1 and "no spendgate ledger" in missing.output
    ok(f"sqlite:///{tmp_path}/new.db", "users", "create", "root", "--admin", "--password-stdin", stdin="root pass 12\n")
    assert (tmp_path / "new.db").exists()
