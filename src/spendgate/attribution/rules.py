"""The attribution rules: who owns a request, from its key and headers (pure).

Project, first that applies: the key is locked to a project; the ``x-spendgate-project``
header, if the key may name that project; the key's default project; otherwise
``unallocated``. Team is the project's team; ``x-spendgate-team`` applies only when there is
no project, if the key may name that team. Environment is the key's.

What a key may name is its scope (``GatewayKey``): without it, any key could charge its spend
to any team's project, and so to that team's budgets. A name outside the scope is refused
(403), and an unknown name's error lists only the names the key may see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from spendgate.attribution.model import Directory, GatewayKey, Project
from spendgate.ingest.tracecontext import traceparent_trace_id

MAX_HEADER_VALUE = 256
# Tags are stored on every event (and every spool record): bounded so one header cannot turn a
# request into megabytes of disk. A key is a name (reports and budgets refer to it as tag:KEY);
# a value is free text without the separators, at most MAX_HEADER_VALUE characters.
MAX_TAGS = 32
MAX_TAGS_HEADER = 8192  # characters, about 32 pairs of a 256-character value
MAX_TAG_KEY = 64
TAG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")

PROJECT_HEADER = "x-spendgate-project"
TEAM_HEADER = "x-spendgate-team"
FEATURE_HEADER = "x-spendgate-feature"
CUSTOMER_HEADER = "x-spendgate-customer"
TRACE_HEADER = "x-spendgate-trace-id"
TAGS_HEADER = "x-spendgate-tags"
ATTRIBUTION_HEADERS = (
    PROJECT_HEADER,
    TEAM_HEADER,
    FEATURE_HEADER,
    CUSTOMER_HEADER,
    TRACE_HEADER,
    TAGS_HEADER,
)


class AttributionError(ValueError):
    """A request names an owner that does not exist or sends malformed dimensions (400)."""


class AttributionForbidden(Exception):
    """A request names a project or team its key may not attribute spend to (403).

    Not an ``AttributionError``: a handler of the 400 must never catch it by accident."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code  # project_not_allowed, team_not_allowed


@dataclass(frozen=True, slots=True)
class Attribution:
    project: str | None
    team: str | None
    cost_center: str | None
    environment: str | None
    key: str | None
    feature: str | None = None
    customer: str | None = None
    trace_id: str | None = None
    tags: Mapping[str, str] | None = None


def parse_tags(value: str) -> dict[str, str]:
    """``key=value, key2=value2`` -> dict. Anything it cannot read as exactly that is an error,
    never silently dropped or reinterpreted: a pair without ``=`` or with two (``a=b=c``), a key
    twice, a key outside ``[A-Za-z0-9_.:/-]`` (up to 64 characters), a value over 256
    characters, more than 32 tags or a header over 8,192 characters."""
    if len(value) > MAX_TAGS_HEADER:
        raise AttributionError(f"{TAGS_HEADER} is longer than {MAX_TAGS_HEADER} characters")
    tags: dict[str, str] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, tag_value = part.partition("=")
        name, tag_value = name.strip(), tag_value.strip()
        if not sep or not name or "=" in tag_value:
            raise AttributionError(
                f"{TAGS_HEADER}: expected key=value pairs separated by commas (one '=' in each), got {part!r}"
            )
        if len(name) > MAX_TAG_KEY or not TAG_KEY.fullmatch(name):
            raise AttributionError(
                f"{TAGS_HEADER}: bad tag key {name[:MAX_TAG_KEY]!r}: up to {MAX_TAG_KEY} ASCII letters, digits "
                "and '_', '.', ':', '/', '-', starting with a letter, a digit or '_'"
            )
        if len(tag_value) > MAX_HEADER_VALUE:
            raise AttributionError(f"{TAGS_HEADER}: the value of {name!r} is longer than {MAX_HEADER_VALUE} characters")
        if name in tags:
            raise AttributionError(f"{TAGS_HEADER}: tag {name!r} is given twice")
        if len(tags) == MAX_TAGS:
            raise AttributionError(f"{TAGS_HEADER}: more than {MAX_TAGS} tags")
        tags[name] = tag_value
    return tags


def _clean(headers: Mapping[str, str], name: str, body: Mapping[str, str] | None = None) -> str | None:
    """The header's value; when the request sent none, what the body rules found for it (already
    bounded where it was read: see ``attribution.body``)."""
    value = headers.get(name)
    if value is None:
        return body.get(name) if body else None
    value = value.strip()
    if len(value) > MAX_HEADER_VALUE:
        raise AttributionError(f"{name} is longer than {MAX_HEADER_VALUE} characters")
    return value or None


def may_name_project(key: GatewayKey, project: Project) -> bool:
    """Whether ``key`` may attribute spend to ``project`` (a few set and dict lookups)."""
    return (
        key.org_wide
        or project.name == key.project
        or (key.team is not None and project.team == key.team)
        or project.name in key.allowed_projects
    )


def may_name_team(key: GatewayKey, team: str) -> bool:
    return key.org_wide or team == key.team


def visible_projects(key: GatewayKey, directory: Directory) -> list[str]:
    """The projects ``key`` may name: all that an error may tell its caller about."""
    return sorted(name for name, project in directory.projects.items() if may_name_project(key, project))


def visible_teams(key: GatewayKey, directory: Directory) -> list[str]:
    return sorted(name for name in directory.teams if may_name_team(key, name))


def _unknown(kind: str, name: str, key: GatewayKey, visible: list[str]) -> str:
    if key.org_wide:
        return f"unknown {kind} {name!r}; known {kind}s: {', '.join(visible) or '(none yet)'}"
    if visible:
        return f"unknown {kind} {name!r}; {kind}s this key may name: {', '.join(visible)}"
    return f"unknown {kind} {name!r}"


def _project_not_allowed(key: GatewayKey, name: str) -> AttributionForbidden:
    # Names what was asked and the fix, never what other teams have (nor the project's team).
    team = f" (team {key.team})" if key.team else ""
    return AttributionForbidden(
        f"key {key.name!r} may not attribute spend to project {name!r}: a key may name its own team's "
        f"projects{team} and the projects allowed on it. An admin can allow this one with "
        f"`spendgate keys update {key.name} --allow-project {name}` (or --org-wide)",
        "project_not_allowed",
    )


def _team_not_allowed(key: GatewayKey, name: str) -> AttributionForbidden:
    own = f"its own team ({key.team})" if key.team else "its own team, and it has none"
    return AttributionForbidden(
        f"key {key.name!r} may not attribute spend to team {name!r}: with {TEAM_HEADER} a key may name only "
        f"{own}. An admin can allow it with `spendgate keys update {key.name} --team {name}` (or --org-wide)",
        "team_not_allowed",
    )


def attribute(
    key: GatewayKey,
    headers: Mapping[str, str],
    directory: Directory,
    body: Mapping[str, str] | None = None,
    body_tags: Mapping[str, str] | None = None,
) -> Attribution:
    """Resolve the owner of a request. ``headers`` has lower-cased names; ``body`` (header name ->
    value) and ``body_tags`` are what the body rules found (``attribution.body``): each fills what
    the headers left unset, before the key's default project, and is held to the same scope.

    Raises ``AttributionError`` (400) for an unknown or malformed value and
    ``AttributionForbidden`` (403) for a project or team outside the key's scope."""
    requested_project = _clean(headers, PROJECT_HEADER, body)
    if key.locked and key.project:
        project_name: str | None = key.project
    elif requested_project is not None:
        requested = directory.projects.get(requested_project)
        if requested is None:
            raise AttributionError(_unknown("project", requested_project, key, visible_projects(key, directory)))
        if not may_name_project(key, requested):
            raise _project_not_allowed(key, requested_project)
        project_name = requested_project
    else:
        project_name = key.project

    project = directory.projects.get(project_name) if project_name else None
    if project is not None:
        team_name: str | None = project.team
    else:
        project_name = None
        team_name = _clean(headers, TEAM_HEADER, body)
        if team_name is not None:
            if team_name not in directory.teams:
                raise AttributionError(_unknown("team", team_name, key, visible_teams(key, directory)))
            if not may_name_team(key, team_name):
                raise _team_not_allowed(key, team_name)
    team = directory.teams.get(team_name) if team_name else None

    raw_tags = headers.get(TAGS_HEADER)
    tags = parse_tags(raw_tags) if raw_tags else None
    if body_tags:
        tags = {**body_tags, **(tags or {})}  # a tag the header names wins over the body's
        if len(tags) > MAX_TAGS:
            raise AttributionError(f"{TAGS_HEADER} and the body's attribution fields give more than {MAX_TAGS} tags")
    return Attribution(
        project=project_name,
        team=team_name,
        cost_center=team.cost_center if team else None,
        environment=key.environment,
        key=key.name,
        feature=_clean(headers, FEATURE_HEADER, body),
        customer=_clean(headers, CUSTOMER_HEADER, body),
        # An OpenTelemetry-instrumented agent's run is its W3C trace when it names no trace of ours.
        trace_id=_clean(headers, TRACE_HEADER, body) or traceparent_trace_id(headers.get("traceparent")),
        tags=tags,
    )
