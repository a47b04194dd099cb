"""The dashboard's app factory: a Starlette app answering every path under /ui, mounted by the
gateway's ASGI app (``gateway/app.py``) on its own port. Its pages come from ``registry.py``;
its scripts and styles (htmx, uPlot, vendored) from the package's ``static/`` folder. No state
at import time: everything a request needs is on ``app.state`` (``store``, ``authenticator``,
``templates``, ``clock``, ``budget_statuses``, ``config_changed``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from spendgate.access.authenticator import Authenticator
from spendgate.ui import auth
from spendgate.ui.guards import Guards
from spendgate.ui.registry import pages
from spendgate.ui.templating import make_templates


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_ui_app(
    store: Any,
    authenticator: Authenticator,
    *,
    budget_statuses: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
    clock: Callable[[], datetime] = _utc_now,
    config_changed: Callable[[], Awaitable[None]] | None = None,
    settings: Any = None,
) -> Starlette:
    routes: list[Any] = [
        Route("/ui/login", auth.login_form, methods=["GET"]),
        Route("/ui/login", auth.login, methods=["POST"]),
        Route("/ui/logout", auth.logout, methods=["POST"]),
        Mount("/ui/static", StaticFiles(packages=[("spendgate.ui", "static")]), name="static"),
    ]
    routes += [Route(page.path, page.handler, methods=list(page.methods)) for page in pages()]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guards)],
        exception_handlers={auth.LoginRequired: auth.login_redirect},
    )
    app.state.store = store
    app.state.authenticator = authenticator
    app.state.templates = make_templates()
    app.state.clock = clock
    app.state.budget_statuses = budget_statuses
    app.state.settings = settings  # base URLs and admin keys, for the reconciliation page
    app.state.config_changed = config_changed  # a key made or revoked: running gateways reload
    return app
