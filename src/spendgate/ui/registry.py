"""The dashboard's pages, in one place. A page is a module of ``views/`` with a ``PAGES``
tuple; the app's routes and the navigation bar are built from them. Adding a page (finance,
anomalies, reconciliation…) is a new module and one line in ``_MODULES``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from spendgate.access.model import Viewer

Handler = Callable[[Request], Awaitable[Response]]


def everyone(viewer: Viewer) -> bool:
    return True


def admins(viewer: Viewer) -> bool:
    return viewer.is_admin


@dataclass(frozen=True)
class Page:
    path: str  # a Starlette route path under /ui
    handler: Handler
    methods: tuple[str, ...] = ("GET",)
    nav: str | None = None  # its label in the navigation bar (None: not listed there)
    shown: Callable[[Viewer], bool] = everyone  # to whom the navigation bar lists it


def pages() -> tuple[Page, ...]:
    from spendgate.ui.views import alerts, anomalies, budgets, keys, members, overview, reconcile, spend

    _MODULES = (overview, spend, budgets, anomalies, keys, members, alerts, reconcile)
    return tuple(page for module in _MODULES for page in module.PAGES)


def navigation(viewer: Viewer | None) -> list[tuple[str, str]]:
    """(label, path) of the pages the navigation bar shows this viewer."""
    if viewer is None:
        return []
    return [(p.nav, p.path) for p in pages() if p.nav and p.shown(viewer)]
