"""Teams, projects and keys management shared by the CLI and the admin API, so the two
can never drift apart."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spendgate.attribution import (
    DEFAULT_ENVIRONMENT,
    GatewayKey,
    Project,
    ScopeChange,
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
    team: str | None = None,
    allow_projects: Iterable[str] = (),
    org_wide: bool = False,
) -> NewKey:
    """A new key and its scope: what it may attribute spend to (``attribution.rules``). A key
    with a default project belongs to that project's team unless ``team`` says otherwise; a
    key given no project, team, allowed project nor ``org_wide`` may name no project or team."""
    if lock and not project:
        raise StoreError("--lock needs --project: a key is locked to its project")
    if project and team is None:
        owner = store.project(project)
        if owner is None:
            raise StoreError(f"unknown project {project!r}")
        team = owner.team
    secret = new_key_secret()
    key = GatewayKey(
        name=check_name("key", name),
        key_hash=hash_key(secret),
        key_prefix=display_prefix(secret),
        environment=check_name("environment", environment or DEFAULT_ENVIRONMENT),
        project=project,
        locked=lock,
        team=team,
        allowed_projects=frozenset(allow_projects),
        org_wide=org_wide,
    )
    return NewKey(store.create_key(key), secret)


def update_key(
    store: Store,
    name: str,
    *,
    team: str | None = None,
    clear_team: bool = False,
    allow_projects: Iterable[str] = (),
    disallow_projects: Iterable[str] = (),
    org_wide: bool | None = None,
) -> GatewayKey:
    """Change a key's scope; running gateways apply it within their refresh interval."""
    allow, disallow = tuple(dict.fromkeys(allow_projects)), tuple(dict.fromkeys(disallow_projects))
    if team is not None and clear_team:
        raise StoreError("--team and --no-team contradict each other")
    both = sorted(set(allow) & set(disallow))
    if both:
        raise StoreError(f"project {both[0]!r} is both allowed and disallowed")
    if team is None and not clear_team and not allow and not disallow and org_wide is None:
        raise StoreError(
            "nothing to change: give --team, --no-team, --allow-project, --disallow-project, --org-wide"
            " or --no-org-wide"
        )
    change = ScopeChange(team=team, clear_team=clear_team, org_wide=org_wide, allow=allow, disallow=disallow)
    return store.update_key_scope(name, change)


def key_scope(key: GatewayKey) -> str:
    """What a key may attribute spend to, in a few words (``keys list``); a key may always
    name its default project besides (the project column)."""
    if key.locked:
        return f"locked to {key.project}"
    if key.org_wide:
        return "org-wide"
    parts = [f"team {key.team}"] if key.team else []
    if key.allowed_projects:
        parts.append(("+ " if parts else "projects ") + ", ".join(sorted(key.allowed_projects)))
    if parts:
        return " ".join(parts)
    return f"project {key.project} only" if key.project else "none (unallocated only)"


def team_as_json(team: Team) -> dict[str, Any]:
    return {"name": team.name, "cost_center": team.cost_center, "reference": team.reference}


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
        "team": key.team,
        "allowed_projects": sorted(key.allowed_projects),
        "org_wide": key.org_wide,
    }
