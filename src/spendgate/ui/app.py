"""The dashboard's app factory: a Starlette app answering every path under /ui, mounted by the
gateway's ASGI app (``gateway/app.py``) on its own port. No state at import time: everything a
request needs is on ``app.state`` (``store``, ``authenticator``, ``templates``)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from spendgate.access.authenticator import Authenticator
from spendgate.ui import auth, pages
from spendgate.ui.guards import Guards
from spendgate.ui.templating import make_templates


def create_ui_app(store: Any, authenticator: Authenticator) -> Starlette:
    routes = [
        Route("/ui", pages.home_redirect, methods=["GET"]),
        Route("/ui/", pages.overview, methods=["GET"]),
        Route("/ui/login", auth.login_form, methods=["GET"]),
        Route("/ui/login", auth.login, methods=["POST"]),
        Route("/ui/logout", auth.logout, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guards)],
        exception_handlers={auth.LoginRequired: auth.login_redirect},
    )
    app.state.store = store
    app.state.authenticator = authenticator
    app.state.templates = make_templates()
    return app
