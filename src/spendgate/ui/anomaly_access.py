"""Who may see an anomaly (or a suspension) of a scope on the dashboard, and who may act on it:
acknowledge, resolve, resume (pure).

The admin API leaves anomalies to org admins; the dashboard also lets a project's people in on
scopes that are wholly theirs, the way budgets do (``Viewer.budget_scopes``):

- a **project** scope: seen by its viewers, acted on by its managers;
- a **team** scope: by those holding a role on the team itself (a project role does not show a
  team's spend in other projects);
- a **key** scope: the key must be locked to a project, then as that project;
- a **feature** scope: a feature is not owned by a project, so it is judged by where the
  anomaly's spend went: seen when all of it was in projects the viewer sees, acted on when
  the viewer manages every one of them;
- **org**, customer and tag scopes sum spend across projects: org admins only.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from spendgate.access.model import Viewer, key_confined_to
from spendgate.attribution.model import GatewayKey
from spendgate.budgets.model import Scope


def _projects_of(scope: Scope, keys: Mapping[str, GatewayKey], feature_projects: Set[str | None]) -> set[str | None]:
    """The projects whose spend a scope is wholly in (empty: not within any set of projects)."""
    if scope.kind == "project":
        return {scope.value}
    if scope.kind == "key":
        key = keys.get(scope.value or "")
        confined = key_confined_to(key) if key is not None else None
        return {confined} if confined else set()
    if scope.kind == "feature":
        return set(feature_projects)
    return set()


def sees_scope(
    viewer: Viewer, scope: Scope, keys: Mapping[str, GatewayKey], feature_projects: Set[str | None] = frozenset()
) -> bool:
    """Whether ``viewer`` may see anomalies of ``scope``; ``feature_projects``: the projects a
    feature anomaly's spend was in (None for spend in no project)."""
    if viewer.is_admin:
        return True
    if scope.kind == "team":
        return scope.value in viewer.team_roles
    projects = _projects_of(scope, keys, feature_projects)
    return bool(projects) and all(viewer.sees_project(p) for p in projects)


def acts_on_scope(
    viewer: Viewer, scope: Scope, keys: Mapping[str, GatewayKey], feature_projects: Set[str | None] = frozenset()
) -> bool:
    """Whether ``viewer`` may acknowledge, resolve or resume ``scope``'s anomalies."""
    if viewer.is_admin:
        return True
    if scope.kind == "team":
        return viewer.manages_team(scope.value)
    projects = _projects_of(scope, keys, feature_projects)
    return bool(projects) and all(viewer.manages_project(p) for p in projects)
