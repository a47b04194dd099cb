"""Teams, projects and gateway keys: the directory the gateway attributes requests with."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from spendgate.attribution.model import Directory, GatewayKey, Project, ScopeChange, Team
from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row, Session
from spendgate.ledger.store.visibility import among

_VERSION = "SELECT value FROM meta WHERE name = 'config_version'"


class TeamsMixin(StoreBase):
    def create_team(self, name: str, cost_center: str | None = None) -> Team:
        duplicate = f"team {name!r} already exists"
        if self._exists("teams", name):
            raise StoreError(duplicate)
        self._write(
            [("INSERT INTO teams (name, cost_center, created_at) VALUES (?, ?, ?)", (name, cost_center, self._now()))],
            duplicate=duplicate,
        )
        return Team(name, cost_center)

    def list_teams(self, names: Collection[str] | None = None) -> list[Team]:
        """Every team, or (``names``: what a caller may see) only those."""
        where, params = _only("name", names)
        return [_team(r) for r in self._query(f"SELECT * FROM teams{where} ORDER BY name", params)]

    def set_team_reference(self, name: str, reference: str | None) -> Team:
        """A team's purchase-order or billing reference (None: cleared); statements carry it."""
        if not self._exists("teams", name):
            raise StoreError(f"unknown team {name!r}; see `spendgate teams list`")
        self._write([("UPDATE teams SET reference = ? WHERE name = ?", (reference, name))])
        return self.list_teams([name])[0]

    def create_project(self, name: str, team: str) -> Project:
        missing = f"unknown team {team!r}; create it first with `spendgate teams create {team}`"
        if not self._exists("teams", team):
            raise StoreError(missing)
        duplicate = f"project {name!r} already exists"
        if self._exists("projects", name):
            raise StoreError(duplicate)
        self._write(
            [("INSERT INTO projects (name, team, created_at) VALUES (?, ?, ?)", (name, team, self._now()))],
            duplicate=duplicate,
            missing=missing,
        )
        return Project(name, team)

    def list_projects(self, names: Collection[str] | None = None) -> list[Project]:
        """Every project, or (``names``: what a caller may see) only those."""
        where, params = _only("name", names)
        rows = self._query(f"SELECT * FROM projects{where} ORDER BY name", params)
        return [Project(r["name"], r["team"]) for r in rows]

    def project(self, name: str) -> Project | None:
        rows = self._query("SELECT * FROM projects WHERE name = ?", (name,))
        return Project(rows[0]["name"], rows[0]["team"]) if rows else None

    def create_key(self, key: GatewayKey) -> GatewayKey:
        for project in ([key.project] if key.project else []) + sorted(key.allowed_projects):
            if not self._exists("projects", project):
                raise StoreError(f"unknown project {project!r}")
        if key.team and not self._exists("teams", key.team):
            raise StoreError(f"unknown team {key.team!r}")
        duplicate = f"key {key.name!r} already exists"
        if self._exists("gateway_keys", key.name):
            raise StoreError(duplicate)
        self._write(
            [
                (
                    "INSERT INTO gateway_keys (name, key_hash, key_prefix, environment, project, locked, team,"
                    " org_wide, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.name,
                        key.key_hash,
                        key.key_prefix,
                        key.environment,
                        key.project,
                        key.locked,
                        key.team,
                        key.org_wide,
                        self._now(),
                    ),
                ),
                *((_ALLOW, (key.name, project)) for project in sorted(key.allowed_projects)),
            ],
            duplicate=duplicate,
            missing="a project or team of this key no longer exists",
        )
        return key

    def list_keys(self, projects: Collection[str] | None = None) -> list[GatewayKey]:
        """Every key, or (``projects``: those a caller may see) only the keys of those projects."""
        where, params = _only("project", projects)
        with self._dialect.session() as session:
            return _keys(session, f"{where} ORDER BY name", tuple(params))

    def key(self, name: str) -> GatewayKey:
        with self._dialect.session() as session:
            found = _keys(session, "WHERE name = ?", (name,))
        if not found:
            raise StoreError(f"unknown key {name!r}")
        return found[0]

    def revoke_key(self, name: str) -> GatewayKey:
        if not self.key(name).revoked:
            self._write(
                [("UPDATE gateway_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (self._now(), name))]
            )
        return self.key(name)

    def update_key_scope(self, name: str, change: ScopeChange) -> GatewayKey:
        """Change what a key may attribute spend to; one transaction, seen by every gateway
        within its refresh interval. Projects are allowed and disallowed one by one (not the
        list rewritten), so two admins changing one key at once both have their way."""
        self.key(name)  # an unknown key is an error, not an update of nothing
        for project in (*change.allow, *change.disallow):
            if not self._exists("projects", project):
                raise StoreError(f"unknown project {project!r}")
        if change.team and not self._exists("teams", change.team):
            raise StoreError(f"unknown team {change.team!r}")
        statements: list[tuple[str, tuple[Any, ...]]] = []
        if change.team or change.clear_team:
            statements.append(("UPDATE gateway_keys SET team = ? WHERE name = ?", (change.team, name)))
        if change.org_wide is not None:
            statements.append(("UPDATE gateway_keys SET org_wide = ? WHERE name = ?", (change.org_wide, name)))
        for project in change.allow:
            statements.append((_ALLOW + " ON CONFLICT (key_name, project) DO NOTHING", (name, project)))
        for project in change.disallow:
            statements.append(("DELETE FROM gateway_key_projects WHERE key_name = ? AND project = ?", (name, project)))
        if statements:
            self._write(statements, missing="a project or team of this change no longer exists")
        return self.key(name)

    def config_version(self) -> int:
        return int(self._query(_VERSION)[0][0])

    def load_directory(self) -> Directory:
        # One snapshot: the version always matches the rows read with it.
        with self._dialect.snapshot() as session:
            version = session.scalar(_VERSION)
            teams = [_team(r) for r in session.rows("SELECT * FROM teams")]
            projects = [Project(r["name"], r["team"]) for r in session.rows("SELECT * FROM projects")]
            keys = _keys(session)
        return Directory.build(teams, projects, keys, version=int(version))


def _team(row: Row) -> Team:
    return Team(row["name"], row["cost_center"], row["reference"])


_ALLOW = "INSERT INTO gateway_key_projects (key_name, project) VALUES (?, ?)"


def _keys(session: Session, where: str = "", params: tuple[Any, ...] = ()) -> list[GatewayKey]:
    """Keys with their allowed projects: two queries, however many keys."""
    allowed: dict[str, set[str]] = {}
    for row in session.rows("SELECT key_name, project FROM gateway_key_projects"):
        allowed.setdefault(row["key_name"], set()).add(row["project"])
    return [
        GatewayKey(
            name=row["name"],
            key_hash=row["key_hash"],
            key_prefix=row["key_prefix"],
            environment=row["environment"],
            project=row["project"],
            locked=bool(row["locked"]),
            revoked=row["revoked_at"] is not None,
            team=row["team"],
            allowed_projects=frozenset(allowed.get(row["name"], ())),
            org_wide=bool(row["org_wide"]),
        )
        for row in session.rows(f"SELECT * FROM gateway_keys {where}", params)
    ]


def _only(column: str, names: Collection[str] | None) -> tuple[str, list[str]]:
    """No condition (None: everything), or ``column`` among ``names``."""
    if names is None:
        return "", []
    sql, params = among(column, names)
    return f" WHERE {sql}", params
