"""Teams, projects and gateway keys: the directory the gateway attributes requests with."""

from __future__ import annotations

from collections.abc import Collection

from spendgate.attribution.model import Directory, GatewayKey, Project, Team
from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row
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
        return [
            Team(r["name"], r["cost_center"]) for r in self._query(f"SELECT * FROM teams{where} ORDER BY name", params)
        ]

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

    def create_key(self, key: GatewayKey) -> GatewayKey:
        missing = f"unknown project {key.project!r}"
        if key.project and not self._exists("projects", key.project):
            raise StoreError(missing)
        duplicate = f"key {key.name!r} already exists"
        if self._exists("gateway_keys", key.name):
            raise StoreError(duplicate)
        self._write(
            [
                (
                    "INSERT INTO gateway_keys (name, key_hash, key_prefix, environment, project, locked, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key.name, key.key_hash, key.key_prefix, key.environment, key.project, key.locked, self._now()),
                )
            ],
            duplicate=duplicate,
            missing=missing,
        )
        return key

    def list_keys(self, projects: Collection[str] | None = None) -> list[GatewayKey]:
        """Every key, or (``projects``: those a caller may see) only the keys of those projects."""
        where, params = _only("project", projects)
        return [_key(r) for r in self._query(f"SELECT * FROM gateway_keys{where} ORDER BY name", params)]

    def revoke_key(self, name: str) -> GatewayKey:
        rows = self._query("SELECT * FROM gateway_keys WHERE name = ?", (name,))
        if not rows:
            raise StoreError(f"unknown key {name!r}")
        if rows[0]["revoked_at"] is None:
            self._write(
                [("UPDATE gateway_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (self._now(), name))]
            )
        return _key(self._query("SELECT * FROM gateway_keys WHERE name = ?", (name,))[0])

    def config_version(self) -> int:
        return int(self._query(_VERSION)[0][0])

    def load_directory(self) -> Directory:
        # One snapshot: the version always matches the rows read with it.
        with self._dialect.snapshot() as session:
            version = session.scalar(_VERSION)
            teams = [Team(r["name"], r["cost_center"]) for r in session.rows("SELECT * FROM teams")]
            projects = [Project(r["name"], r["team"]) for r in session.rows("SELECT * FROM projects")]
            keys = [_key(r) for r in session.rows("SELECT * FROM gateway_keys")]
        return Directory.build(teams, projects, keys, version=int(version))


def _only(column: str, names: Collection[str] | None) -> tuple[str, list[str]]:
    """No condition (None: everything), or ``column`` among ``names``."""
    if names is None:
        return "", []
    sql, params = among(column, names)
    return f" WHERE {sql}", params


def _key(row: Row) -> GatewayKey:
    return GatewayKey(
        name=row["name"],
        key_hash=row["key_hash"],
        key_prefix=row["key_prefix"],
        environment=row["environment"],
        project=row["project"],
        locked=bool(row["locked"]),
        revoked=row["revoked_at"] is not None,
    )
