"""User management shared by the CLI and the admin API (so the two cannot drift apart):
names checked, passwords hashed, token secrets made and shown once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spendgate.access.model import Grant, User
from spendgate.access.passwords import Passwords, check_password
from spendgate.access.tokens import new_token_secret, secret_hash, token_prefix
from spendgate.management import check_name


def create_user(store: Any, passwords: Passwords, name: str, password: str, *, admin: bool = False) -> User:
    check_name("user", name)
    return store.create_user(name, passwords.hash(check_password(password)), is_admin=admin)


def set_password(store: Any, passwords: Passwords, name: str, password: str) -> User:
    """A new password; every session of the user ends."""
    return store.set_password_hash(name, passwords.hash(check_password(password)))


def grant(store: Any, user: str, kind: str, name: str, role: str) -> Grant:
    return store.grant(Grant(user=user, kind=kind, name=name, role=role))


@dataclass(frozen=True)
class NewToken:
    token: dict[str, Any]
    secret: str  # shown once, never stored

    def as_json(self) -> dict[str, Any]:
        return {**self.token, "token": self.secret}


def create_token(store: Any, user: str, name: str) -> NewToken:
    secret = new_token_secret()
    token = store.create_token(user, check_name("token", name), secret_hash(secret), token_prefix(secret))
    return NewToken(token, secret)


def user_as_json(user: User, grants: list[Grant] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": user.name,
        "admin": user.is_admin,
        "disabled": user.disabled,
        "created_at": user.created_at,
    }
    if grants is not None:
        row["grants"] = [grant_as_json(g) for g in grants]
    return row


def grant_as_json(grant: Grant) -> dict[str, Any]:
    return {"user": grant.user, grant.kind: grant.name, "role": grant.role}
