"""Who a dashboard request is, and the login and logout routes.

In a page::

    async def page(request: Request) -> Response:
        viewer = await require_viewer(request)          # or the browser is sent to /ui/login
        rows = await read(request, lambda store: store.report(ReportQuery(by=("project",), visible=viewer.visibility)))
        return render(request, "page.html", {...})      # viewer and csrf_token are in every template

and in a route that changes something::

    form = await checked_form(request)                  # 403 without the session's CSRF token

Forms carry ``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``; htmx or
fetch requests send the same token in ``x-csrf-token``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spendgate.access.authenticator import Authenticator, Session
from spendgate.access.model import Viewer
from spendgate.access.sessions import CSRF_FIELD, CSRF_HEADER, new_login_nonce
from spendgate.ui.templating import render

T = TypeVar("T")
LOGIN_PATH = "/ui/login"
HOME_PATH = "/ui/"
_MAX_FIELD = 1024
_UNKNOWN = object()


class LoginRequired(Exception):
    """Raised by ``require_viewer``; the app answers with a redirect to the login form."""


def authenticator_of(request: Request) -> Authenticator:
    return request.app.state.authenticator


async def read(request: Request, query: Callable[[Any], T]) -> T:
    """Run ``query(store)`` off the event loop (the store's calls block)."""
    return await run_in_threadpool(query, request.app.state.store)


async def current_session(request: Request) -> Session | None:
    """The request's live session, or None; looked up once per request."""
    session = getattr(request.state, "session", _UNKNOWN)
    if session is _UNKNOWN:
        auth = authenticator_of(request)
        cookie = request.cookies.get(auth.policy.cookie_name)
        session = await run_in_threadpool(auth.session, cookie) if cookie else None
        request.state.session = session
    return session


async def require_viewer(request: Request) -> Viewer:
    """The viewer of a logged-in request; otherwise ``LoginRequired`` (a redirect to the form)."""
    session = await current_session(request)
    if session is None:
        raise LoginRequired
    return session.viewer


async def checked_form(request: Request) -> FormData:
    """The form of a state-changing request made with a session, once its CSRF token (form
    field ``csrf_token`` or header ``x-csrf-token``) is checked: a 403 otherwise."""
    session = await current_session(request)
    if session is None:
        raise LoginRequired
    form = await request.form()
    token = request.headers.get(CSRF_HEADER) or _field(form, CSRF_FIELD)
    if not authenticator_of(request).csrf_ok(session, token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


def login_redirect(request: Request, exc: Exception) -> Response:
    """``LoginRequired``'s answer: to the login form, coming back here afterwards (htmx gets
    ``HX-Redirect``, since it would otherwise swap the login page into a fragment)."""
    target = f"{LOGIN_PATH}?next={request.url.path}" if safe_next(request.url.path) else LOGIN_PATH
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"hx-redirect": target})
    return RedirectResponse(target, status_code=303)


def safe_next(path: str | None) -> str | None:
    """A place to return to after logging in: only a dashboard path (never another site)."""
    if not path or not path.startswith("/ui/") or "//" in path or "\\" in path or len(path) > 512:
        return None
    return path


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value[:_MAX_FIELD] if isinstance(value, str) else None


# --- the routes -------------------------------------------------------------------------------------
def _login_page(request: Request, *, status: int = 200, error: str | None = None, headers: Any = None) -> Response:
    """The login form, with a fresh nonce cookie and the CSRF token bound to it."""
    auth = authenticator_of(request)
    nonce = new_login_nonce()
    response = render(
        request,
        "login.html",
        {
            "csrf_token": auth.keys.csrf_token(nonce, "login"),
            "error": error,
            "next": safe_next(request.query_params.get("next")) or "",
            "username": "",
        },
        status_code=status,
        headers=headers,
    )
    response.set_cookie(auth.policy.login_cookie_name, nonce, **auth.policy.login_cookie_options())
    return response


async def login_form(request: Request) -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")) or HOME_PATH, status_code=303)
    return await run_in_threadpool(_login_page, request)


async def login(request: Request) -> Response:
    auth = authenticator_of(request)
    form = await request.form()
    nonce = request.cookies.get(auth.policy.login_cookie_name)
    keys = await run_in_threadpool(lambda: auth.keys)  # read from the ledger the first time
    if not keys.csrf_ok(nonce, _field(form, CSRF_FIELD), "login"):
        return await run_in_threadpool(
            functools.partial(_login_page, request, status=403, error="The form expired. Please try again.")
        )
    username = _field(form, "username") or ""
    password = _field(form, "password") or ""
    client = request.client.host if request.client else None
    outcome = await run_in_threadpool(auth.login, username, password, client)
    if outcome.retry_after:
        message = f"Too many failed attempts. Try again in {outcome.retry_after} seconds."
        return await run_in_threadpool(
            functools.partial(
                _login_page, request, status=429, error=message, headers={"retry-after": str(outcome.retry_after)}
            )
        )
    if not outcome.ok:
        return await run_in_threadpool(
            functools.partial(_login_page, request, status=401, error="Wrong user name or password.")
        )
    old = request.cookies.get(auth.policy.cookie_name)
    if old:  # a new login replaces the session the browser had (never reuses it)
        await run_in_threadpool(auth.logout, old)
    response = RedirectResponse(safe_next(_field(form, "next")) or HOME_PATH, status_code=303)
    response.set_cookie(auth.policy.cookie_name, outcome.cookie or "", **auth.policy.cookie_options())
    response.delete_cookie(auth.policy.login_cookie_name, path="/", secure=auth.policy.secure, httponly=True)
    return response


async def logout(request: Request) -> Response:
    auth = authenticator_of(request)
    if await current_session(request) is not None:
        await checked_form(request)
        await run_in_threadpool(auth.logout, request.cookies.get(auth.policy.cookie_name))
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(auth.policy.cookie_name, path="/", secure=auth.policy.secure, httponly=True)
    return response
