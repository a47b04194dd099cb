"""Users, role grants, and the ``Viewer`` a request acts as (pure).

Roles:

- **org admin** (``users create --admin``, or the admin key): sees and manages everything,
  unallocated spend and org-level things (webhooks, org/customer/feature/tag budgets) included;
- **manager** of a project: sees the project's spend, manages its keys, budgets and members;
- **viewer** of a project: sees its spend;
- a role on a **team** is that role on every project of the team (those made later too), and
  also covers the team's spend that is in no project and the team's budgets.

A user sees nothing of a project they hold no role on: not its name, not its figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from spendgate.access.visibility import Visibility
from spendgate.attribution.model import GatewayKey, Project
from spendgate.budgets.model import Scope

ROLES = ("viewer", "manager")
GRANT_KINDS = ("project", "team")
_RANK = {"viewer": 1, "manager": 2}


class AccessError(ValueError):
    """A user, grant, token or password that cannot be made or changed as asked."""


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool = False
    disabled: bool = False
    created_at: str | None = None  # format_ts text


@dataclass(frozen=True)
class Grant:
    """``user`` holds ``role`` on the project or team ``name`` (``kind``)."""

    user: str
    kind: str
    name: str
    role: str

    def __post_init__(self) -> None:
        if self.kind not in GRANT_KINDS:
            raise AccessError(f"a role is granted on a project or a team, not on {self.kind!r}")
        if self.role not in ROLES:
            raise AccessError(f"unknown role {self.role!r}; roles: {', '.join(ROLES)}")

    @property
    def scope(self) -> str:
        return f"{self.kind}:{self.name}"


def key_confined_to(key: GatewayKey) -> str | None:
    """The one project all of a key's spend is in (a key locked to its project), or None
    when its requests can land elsewhere. Only such a key's budgets are a project's business."""
    return key.project if key.locked else None


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Viewer:
    """Who a request acts as, and what that lets it see and do. Built per request from the
    user's grants and the current projects, so a grant or a new project applies at once."""

    name: str | None  # the user; None for the admin key (the break-glass superuser)
    is_admin: bool
    # What it may see of the ledger; None: everything.
    visibility: Visibility | None = None
    # project -> the role held on it (directly or through its team), for visible projects.
    project_roles: Mapping[str, str] = field(default_factory=_empty)
    # team -> the role held on the team itself.
    team_roles: Mapping[str, str] = field(default_factory=_empty)
    # visible project -> its team (a visible project's team name is shown with it).
    project_teams: Mapping[str, str] = field(default_factory=_empty)

    @classmethod
    def superuser(cls) -> Viewer:
        """The admin key: everything, and no user behind it."""
        return cls(name=None, is_admin=True)

    @classmethod
    def of_user(cls, user: User, grants: Iterable[Grant], projects: Iterable[Project]) -> Viewer:
        """A user's viewer: an admin sees all; anyone else sees what their grants cover
        among ``projects`` (every project, so a team grant covers the team's projects)."""
        if user.is_admin:
            return cls(name=user.name, is_admin=True)
        direct: dict[str, str] = {}
        teams: dict[str, str] = {}
        for grant in grants:
            target = direct if grant.kind == "project" else teams
            if _RANK[grant.role] > _RANK.get(target.get(grant.name, ""), 0):
                target[grant.name] = grant.role
        roles: dict[str, str] = {}
        project_teams: dict[str, str] = {}
        for project in projects:
            held = [r for r in (direct.get(project.name), teams.get(project.team)) if r]
            if held:
                roles[project.name] = max(held, key=_RANK.__getitem__)
                project_teams[project.name] = project.team
        return cls(
            name=user.name,
            is_admin=False,
            visibility=Visibility(projects=frozenset(roles), teams=frozenset(teams)),
            project_roles=MappingProxyType(roles),
            team_roles=MappingProxyType(teams),
            project_teams=MappingProxyType(project_teams),
        )

    @property
    def is_user(self) -> bool:
        return self.name is not None

    # --- seeing ---------------------------------------------------------------------------------
    def sees_project(self, name: str | None) -> bool:
        return self.is_admin or (name is not None and name in self.project_roles)

    def sees_team(self, name: str | None) -> bool:
        """A team is listed to whoever holds a role on it or on one of its projects."""
        return self.is_admin or (name is not None and (name in self.team_roles or name in self.project_teams.values()))

    def visible_projects(self) -> frozenset[str] | None:
        """The projects this viewer may see; None: all of them."""
        return None if self.visibility is None else self.visibility.projects

    def visible_teams(self) -> frozenset[str] | None:
        """The teams this viewer may see listed; None: all of them."""
        if self.is_admin:
            return None
        return frozenset(self.team_roles) | frozenset(self.project_teams.values())

    def sees_key(self, key: GatewayKey) -> bool:
        """A key is listed to whoever sees its project; a key with no project, to admins."""
        return self.is_admin or self.sees_project(key.project)

    def budget_scopes(self, keys: Iterable[GatewayKey]) -> frozenset[str] | None:
        """The budget scopes (as written, ``project:NAME``) this viewer may see; None: all.
        A project's budgets, a team's when the role is on the team itself, a key's when the key
        is locked to a visible project. Org, customer, feature and tag budgets sum spend across
        projects: admins only."""
        if self.is_admin:
            return None
        scopes = {f"project:{p}" for p in self.project_roles}
        scopes |= {f"team:{t}" for t in self.team_roles}
        scopes |= {f"key:{k.name}" for k in keys if key_confined_to(k) in self.project_roles}
        return frozenset(scopes)

    # --- managing --------------------------------------------------------------------------------
    def manages_project(self, name: str | None) -> bool:
        return self.is_admin or (name is not None and self.project_roles.get(name) == "manager")

    def manages_team(self, name: str | None) -> bool:
        return self.is_admin or (name is not None and self.team_roles.get(name) == "manager")

    def manages_scope(self, scope: Scope, keys: Mapping[str, GatewayKey]) -> bool:
        """Whether this viewer may create a budget or limit on ``scope``."""
        if self.is_admin:
            return True
        if scope.kind == "project":
            return self.manages_project(scope.value)
        if scope.kind == "team":
            return self.manages_team(scope.value)
        if scope.kind == "key":
            key = keys.get(scope.value or "")
            return key is not None and self.manages_project(key_confined_to(key))
        return False

    def may_grant(self, kind: str, name: str) -> bool:
        """Granting and revoking roles on a project or team: its managers (and admins)."""
        return self.manages_project(name) if kind == "project" else self.manages_team(name)

    def sees_grant_target(self, kind: str, name: str) -> bool:
        return self.sees_project(name) if kind == "project" else self.is_admin or name in self.team_roles

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "admin": self.is_admin,
            "projects": None if self.is_admin else dict(sorted(self.project_roles.items())),
            "teams": None if self.is_admin else dict(sorted(self.team_roles.items())),
        }
