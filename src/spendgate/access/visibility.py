"""What a caller may see of the ledger, as plain data that every read takes (pure).

Roles are enforced where data is read: the store turns a ``Visibility`` into a WHERE clause
on raw events, rollups, keys, projects and budgets, so what a caller may not see is never
returned, and a page or an API answer cannot leak it. ``None`` in place of a Visibility means
everything (org admins and the admin key).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Visibility:
    """The spend of ``projects``, and the spend of ``teams`` that is in no project (requests
    sent with ``x-spendgate-team`` and no project). Nothing else: no other project, no
    unallocated spend, no org-wide figure."""

    projects: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.projects and not self.teams

    def sees(self, project: str | None, team: str | None) -> bool:
        """Whether spend attributed to (project, team) is visible: the rule the store's
        WHERE clauses implement, for code that filters what it holds in memory."""
        if project is not None:
            return project in self.projects
        return team is not None and team in self.teams
