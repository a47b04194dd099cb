"""Templates (``templates/``, package data) and how a page renders one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from spendgate.money import format_usd


def make_templates() -> Jinja2Templates:
    # Autoescaping on for every template: values from the ledger (feature names, customers,
    # tags) are whatever clients sent.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spendgate.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["usd"] = _usd
    env.filters["percent"] = _percent
    return Jinja2Templates(env=env)


def _usd(value: Any) -> str:
    return format_usd(value) if isinstance(value, Decimal) else str(value)


def _percent(value: Any) -> str:
    return "–" if value is None else f"{Decimal(value) * 100:.1f}%"


def csv_link(request: Request) -> Callable[[str], str]:
    """The current page's URL asking for one of its tables as CSV."""

    def link(name: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "csv"]
        return f"{request.url.path}?{urlencode([*params, ('csv', name)])}"

    return link


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
    from spendgate.ui.registry import navigation

    viewer = getattr(session, "viewer", None)
    base = {
        "viewer": viewer,
        "csrf_token": getattr(session, "csrf_token", ""),
        "nav": navigation(viewer),
        "csv_link": csv_link(request),
        "fixed": (),
    }
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, name, {**base, **(context or {})}, status_code=status_code, headers=headers
    )
