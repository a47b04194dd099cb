"""Gateway keys: the keys of the projects a viewer sees; their managers create (the secret is
shown once, on the answer to the form, and never stored), revoke and rotate them. Rotating
makes a new key with the same scope and leaves the old one working until it is revoked, so
clients can move over without an outage."""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spendgate import management
from spendgate.access.model import Viewer
from spendgate.attribution.model import GatewayKey
from spendgate.ledger.errors import StoreError
from spendgate.ui.auth import checked_form, read, require_viewer
from spendgate.ui.registry import Page
from spendgate.ui.tables import Column, Table, View, respond

_VERSION = re.compile(r"^(?P<base>.+)-v(?P<n>[0-9]{1,6})$")
_NO_PROJECT = ""


def rotated_name(name: str, taken: set[str]) -> str:
    """The next free ``NAME-vN`` after ``name`` (pure): a-v2 after a, a-v3 after a-v2."""
    match = _VERSION.match(name)
    base, n = (match["base"], int(match["n"])) if match else (name, 1)
    while True:
        n += 1
        candidate = f"{base}-v{n}"
        if candidate not in taken:
            return candidate


def _managed_projects(viewer: Viewer, projects: list[Any]) -> list[str]:
    return [p.name for p in projects if viewer.manages_project(p.name)]


async def _page(
    request: Request, viewer: Viewer, *, created: Any = None, error: str | None = None, status: int = 200
) -> Response:
    def query(store: Any) -> tuple[list[GatewayKey], list[Any]]:
        return store.list_keys(viewer.visible_projects()), store.list_projects(viewer.visible_projects())

    keys, projects = await read(request, query)
    table = Table(
        "keys",
        "Keys",
        (
            Column("name", "key"),
            Column("prefix", "prefix"),
            Column("project", "project"),
            Column("scope", "may attribute to"),
            Column("environment", "environment"),
            Column("state", "state"),
        ),
        row_testid="key-row",
        empty="No key.",
    )
    for key in keys:
        table.rows.append(
            {
                "name": key.name,
                "prefix": key.key_prefix,
                "project": key.project,
                "scope": management.key_scope(key),
                "environment": key.environment,
                "state": "revoked" if key.revoked else "active",
                "manageable": not key.revoked and viewer.manages_project(key.project),
            }
        )
    context = {
        "title": "Keys",
        "managed_projects": _managed_projects(viewer, projects),
        "created": created,
        "error": error,
    }
    return respond(request, View("keys.html", context, [table], status_code=status))


async def keys(request: Request) -> Response:
    viewer = await require_viewer(request)
    return await _page(request, viewer)


async def _config_changed(request: Request) -> None:
    changed = request.app.state.config_changed
    if changed is not None:
        await changed()


async def create(request: Request) -> Response:
    viewer = await require_viewer(request)
    form = await checked_form(request)
    name = str(form.get("name") or "").strip()
    project = str(form.get("project") or _NO_PROJECT) or None
    environment = str(form.get("environment") or "").strip() or None
    lock = form.get("lock") == "on"
    if project is None and not viewer.is_admin:
        raise HTTPException(403, "only org admins create keys with no project")
    if project is not None and not viewer.manages_project(project):
        raise HTTPException(403, "only the project's managers create its keys")
    try:
        made = await read(
            request,
            lambda store: management.create_key(store, name, project=project, lock=lock, environment=environment),
        )
    except StoreError as exc:
        return await _page(request, viewer, error=str(exc), status=400)
    await _config_changed(request)
    return await _page(request, viewer, created=made)


async def _managed_key(request: Request, viewer: Viewer) -> GatewayKey:
    name = request.path_params["name"]
    try:
        key = await read(request, lambda store: store.key(name))
    except StoreError:
        key = None
    if key is None or not viewer.sees_key(key):
        raise HTTPException(404, "no such key")
    if not viewer.manages_project(key.project):
        raise HTTPException(403, "only the project's managers manage its keys")
    return key


async def revoke(request: Request) -> Response:
    viewer = await require_viewer(request)
    await checked_form(request)
    key = await _managed_key(request, viewer)
    await read(request, lambda store: store.revoke_key(key.name))
    await _config_changed(request)
    return RedirectResponse("/ui/keys", status_code=303)


async def rotate(request: Request) -> Response:
    viewer = await require_viewer(request)
    await checked_form(request)
    old = await _managed_key(request, viewer)

    def make(store: Any) -> management.NewKey:
        taken = {k.name for k in store.list_keys()}
        return management.create_key(
            store,
            rotated_name(old.name, taken),
            project=old.project,
            lock=old.locked,
            environment=old.environment,
            team=old.team,
            allow_projects=old.allowed_projects,
            org_wide=old.org_wide,
        )

    try:
        made = await read(request, make)
    except StoreError as exc:
        return await _page(request, viewer, error=str(exc), status=400)
    await _config_changed(request)
    return await _page(request, viewer, created=made)


PAGES = (
    Page("/ui/keys", keys, nav="Keys"),
    Page("/ui/keys", create, methods=("POST",)),
    Page("/ui/keys/{name}/revoke", revoke, methods=("POST",)),
    Page("/ui/keys/{name}/rotate", rotate, methods=("POST",)),
)
