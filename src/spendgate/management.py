"""Teams, projects and keys management shared by the CLI and the admin API, so the two
can never drift apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from spendgate.attribution import (
    DEFAULT_ENVIRONMENT,
    GatewayKey,
    Project,
    Team,
    display_prefix,
    hash_key,
    new_key_secret,
)
from spendgate.ledger.store import Store, StoreError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name or ""):
        raise StoreError(f"{kind} name {name!r}: use 1-64 letters, digits, '_', '.', '-' (not starting with a symbol)")
    return name


def create_team(store: Store, name: str, cost_center: str | None = None) -> Team:
    return store.create_team(check_name("team", name), cost_center)


def create_project(store: Store, name: str, team: str) -> Project:
    return store.create_project(check_name("project", name), team)


@dataclass(frozen=True)
class NewKey:
    key: GatewayKey
    secret: str  # shown once, never stored

    def as_json(self) -> dict[str, Any]:
        return {**key_as_json(self.key), "key": self.secret}


def create_key(
    store: Store,
    name: str,
    *,
    project: str | None = None,
    lock: bool = False,
    environment: str | None = None,
) -> NewKey:
    if lock and not project:
        raise StoreError("--lock needs --project: a key is locked to its project")
    secret = new_key_secret()
    key = GatewayKey(
        name=check_name("key", name),
        key_hash=hash_key(secret),
        key_prefix=display_prefix(secret),
        environment=check_name("environment", environment or DEFAULT_ENVIRONMENT),
        project=project,
        locked=lock,
    )
    return NewKey(store.create_key(key), secret)


def team_as_json(team: Team) -> dict[str, Any]:
    return {"name": team.name, "cost_center": team.cost_center}


def project_as_json(project: Project) -> dict[str, Any]:
    return {"name": project.name, "team": project.team}


def key_as_json(key: GatewayKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "prefix": key.key_prefix,
        "project": key.project,
        "locked": key.locked,
        "environment": key.environment,
        "revoked": key.revoked,
    }
