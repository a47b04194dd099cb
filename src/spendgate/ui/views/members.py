"""Members and roles: who holds which role on the projects and teams a viewer manages (org
admins: everyone's, and who is an admin); managers grant and revoke roles there. A viewer
without a manager role sees their own roles only (the admin API's rule)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spendgate.access import accounts
from spendgate.access.model import GRANT_KINDS, ROLES, AccessError, Viewer
from spendgate.ledger.errors import StoreError
from spendgate.ui.auth import checked_form, read, require_viewer
from spendgate.ui.registry import Page
from spendgate.ui.tables import Column, Table, View, respond


def _managed_targets(viewer: Viewer, projects: list[Any], teams: list[Any]) -> list[tuple[str, str]]:
    """(kind, name) of what this viewer may grant roles on."""
    return [("project", p.name) for p in projects if viewer.may_grant("project", p.name)] + [
        ("team", t.name) for t in teams if viewer.may_grant("team", t.name)
    ]


async def _page(request: Request, viewer: Viewer, *, error: str | None = None, status: int = 200) -> Response:
    def query(store: Any) -> tuple[list[Any], list[tuple[str, str]], list[Any]]:
        projects = store.list_projects(viewer.visible_projects())
        teams = store.list_teams(viewer.visible_teams())
        targets = _managed_targets(viewer, projects, teams)
        if viewer.is_admin:
            grants = store.list_grants()
            admins = [u for u in store.list_users() if u.is_admin]
        else:
            found = {(g.user, g.kind, g.name): g for g in store.list_grants(viewer.name or "")}
            for kind, name in targets:
                found.update({(g.user, g.kind, g.name): g for g in store.list_grants(kind=kind, name=name)})
            grants = [found[k] for k in sorted(found)]
            admins = []
        return grants, targets, admins

    grants, targets, admins = await read(request, query)
    table = Table(
        "members",
        "Roles",
        (Column("user", "user"), Column("kind", "on"), Column("name", "name"), Column("role", "role")),
        row_testid="member-row",
        empty="No role granted.",
    )
    manageable = set(targets)
    for grant in grants:
        table.rows.append(
            {
                "user": grant.user,
                "kind": grant.kind,
                "name": grant.name,
                "role": grant.role,
                "revocable": (grant.kind, grant.name) in manageable,
            }
        )
    for user in admins:
        table.rows.append({"user": user.name, "kind": "org", "name": "", "role": "admin", "revocable": False})
    context = {"title": "Members", "targets": targets, "roles": ROLES, "error": error}
    return respond(request, View("members.html", context, [table], status_code=status))


async def members(request: Request) -> Response:
    return await _page(request, await require_viewer(request))


def _target(form: Any) -> tuple[str, str]:
    kind, _, name = str(form.get("target") or "").partition(":")
    if kind not in GRANT_KINDS or not name:
        raise HTTPException(400, "choose a project or team")
    return kind, name


async def grant(request: Request) -> Response:
    viewer = await require_viewer(request)
    form = await checked_form(request)
    kind, name = _target(form)
    if not viewer.may_grant(kind, name):
        raise HTTPException(403, f"only managers of the {kind} grant roles on it")
    user, role = str(form.get("user") or "").strip(), str(form.get("role") or "")
    try:
        await read(request, lambda store: accounts.grant(store, user, kind, name, role))
    except (StoreError, AccessError) as exc:
        return await _page(request, viewer, error=str(exc), status=400)
    return RedirectResponse("/ui/members", status_code=303)


async def revoke(request: Request) -> Response:
    viewer = await require_viewer(request)
    form = await checked_form(request)
    kind, name = _target(form)
    if not viewer.may_grant(kind, name):
        raise HTTPException(403, f"only managers of the {kind} revoke roles on it")
    user = str(form.get("user") or "")
    try:
        await read(request, lambda store: store.revoke_grant(user, kind, name))
    except StoreError as exc:
        return await _page(request, viewer, error=str(exc), status=400)
    return RedirectResponse("/ui/members", status_code=303)


PAGES = (
    Page("/ui/members", members, nav="Members"),
    Page("/ui/members/grant", grant, methods=("POST",)),
    Page("/ui/members/revoke", revoke, methods=("POST",)),
)
