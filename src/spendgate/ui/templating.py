"""Templates (``templates/``, package data) and how a page renders one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates


def make_templates() -> Jinja2Templates:
    # Autoescaping on for every template: values from the ledger (feature names, customers,
    # tags) are whatever clients sent.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spendgate.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return Jinja2Templates(env=env)


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A template with ``viewer`` and ``csrf_token`` (the session's; "" without one) besides
    ``context``."""
    session = getattr(request.state, "session", None)
    base = {"viewer": getattr(session, "viewer", None), "csrf_token": getattr(session, "csrf_token", "")}
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, name, {**base, **(context or {})}, status_code=status_code, headers=headers
    )
