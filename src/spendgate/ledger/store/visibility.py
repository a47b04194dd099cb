"""A caller's ``Visibility`` as a WHERE condition: how every read of the store is scoped, so
that what a caller may not see never leaves the database."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from spendgate.access.visibility import Visibility

# Names per IN list: under SQLite's oldest parameter limit (999) with room for the rest.
_CHUNK = 500


def among(column: str, values: Collection[str]) -> tuple[str, list[Any]]:
    """``column`` is one of ``values`` (any number of them; none: false)."""
    ordered = sorted(values)
    if not ordered:
        return "1 = 0", []
    parts = []
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i : i + _CHUNK]
        parts.append(f"{column} IN ({', '.join('?' * len(chunk))})")
    return (parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})"), ordered


def visible_spend(visible: Visibility, project: str = "project", team: str = "team") -> tuple[str, list[Any]]:
    """Rows of spend (raw events, rollup dimensions) the visibility covers: its projects, and
    its teams' spend that is in no project (``Visibility.sees``)."""
    parts: list[str] = []
    params: list[Any] = []
    if visible.projects:
        sql, values = among(project, visible.projects)
        parts.append(sql)
        params += values
    if visible.teams:
        sql, values = among(team, visible.teams)
        parts.append(f"({project} IS NULL AND {sql})")
        params += values
    if not parts:
        return "1 = 0", []
    return f"({' OR '.join(parts)})", params
