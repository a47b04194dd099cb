"""What the users, roles and dashboard tests share: a small org with traffic, users, logging in."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from spendgate.access import accounts
from spendgate.access.passwords import Passwords

ADMIN = "admin-key-for-role-tests"
PASSWORD = "correct horse battery"
# Names that must never show up for a user without a role on them.
SECRET_PROJECT = "secret-ranker"
SECRET_TEAM = "search-team"


@dataclass
class Clock:
    """A clock tests move by hand (the gateway, its sessions and the login throttle read it)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


def org_with_traffic(gateway: Any) -> dict[str, str]:
    """Teams payments (project checkout) and search-team (project secret-ranker), a key locked
    to each, and requests through each: checkout 2 x $0.00021, secret-ranker 1 x $0.0021.
    Returns the keys' secrets by project."""
    gateway.team("payments")
    gateway.team(SECRET_TEAM)
    gateway.project("checkout", "payments")
    gateway.project(SECRET_PROJECT, SECRET_TEAM)
    secrets = {
        "checkout": gateway.key("checkout-key", project="checkout", lock=True),
        SECRET_PROJECT: gateway.key("ranker-key", project=SECRET_PROJECT, lock=True),
    }
    gateway.wait_for_directory()
    for project, directive in (
        ("checkout", "[[sim input=1000 output=100]]"),
        ("checkout", "[[sim input=1000 output=100]]"),
        (SECRET_PROJECT, "[[sim input=10000 output=1000]]"),
    ):
        gateway.openai(secrets[project]).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": directive}]
        )
    gateway.flush()
    return secrets


def add_user(gateway: Any, name: str, *grants: tuple[str, str, str], admin: bool = False) -> None:
    """A user with the password PASSWORD and grants (kind, name, role)."""
    accounts.create_user(gateway.store, Passwords(), name, PASSWORD, admin=admin)
    for kind, target, role in grants:
        accounts.grant(gateway.store, name, kind, target, role)


def token_client(gateway: Any, user: str) -> httpx.Client:
    secret = accounts.create_token(gateway.store, user, f"tests-{len(gateway.store.list_tokens(user))}").secret
    return httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {secret}"})


def admin_client(gateway: Any) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"})


_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def form_token(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match, page.text
    return match[1]


def login(client: httpx.Client, username: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
    """Fill in and send the login form, as a browser does (its cookie, its CSRF token)."""
    token = form_token(client.get("/ui/login"))
    return client.post("/ui/login", data={"username": username, "password": password, "csrf_token": token, **extra})


@contextmanager
def logged_in(gateway: Any, username: str) -> Iterator[httpx.Client]:
    """A browser-like client logged in as ``username``."""
    with httpx.Client(base_url=gateway.url) as client:
        response = login(client, username)
        assert response.status_code == 303 and response.headers["location"] == "/ui/", response.text
        yield client
