"""Who can own spend: teams, projects and gateway keys, as plain records."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ENVIRONMENT = "production"
UNALLOCATED = "unallocated"


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    cost_center: str | None = None
    reference: str | None = None  # purchase-order or billing reference, shown on statements


@dataclass(frozen=True, slots=True)
class Project:
    name: str
    team: str


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """A gateway key (its hash only) and what it may attribute spend to: its scope.

    A key may name (``x-spendgate-project``) its default ``project``, the projects of its own
    ``team`` and those in ``allowed_projects``; ``org_wide``, any project. It may name
    (``x-spendgate-team``) its own team; ``org_wide``, any team. A ``locked`` key's spend is
    always its project's, whatever it names."""

    name: str
    key_hash: str
    key_prefix: str
    environment: str = DEFAULT_ENVIRONMENT
    project: str | None = None
    locked: bool = False
    revoked: bool = False
    team: str | None = None
    allowed_projects: frozenset[str] = frozenset()
    org_wide: bool = False


@dataclass(frozen=True, slots=True)
class ScopeChange:
    """A change to a key's scope; what it leaves as None (or empty) stays as it is."""

    team: str | None = None
    clear_team: bool = False
    org_wide: bool | None = None
    allow: tuple[str, ...] = ()
    disallow: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directory:
    """An immutable snapshot of teams, projects and keys, swapped whole on refresh so the
    request path reads it without locks or database round trips."""

    teams: dict[str, Team] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    keys_by_hash: dict[str, GatewayKey] = field(default_factory=dict)
    version: int = 0

    @classmethod
    def build(cls, teams, projects, keys, version: int = 0) -> Directory:
        return cls(
            teams={t.name: t for t in teams},
            projects={p.name: p for p in projects},
            keys_by_hash={k.key_hash: k for k in keys},
            version=version,
        )
