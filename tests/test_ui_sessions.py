"""The dashboard's login, sessions and CSRF, over HTTP against the real gateway (both backends):
/ui is served by `serve` on the gateway's port."""

from __future__ import annotations

import httpx

from tests.access_support import (
    PASSWORD,
    SECRET_PROJECT,
    SECRET_TEAM,
    Clock,
    add_user,
    form_token,
    logged_in,
    login,
    org_with_traffic,
)


def test_a_user_logs_in_and_sees_only_their_projects_spend(make_gateway) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    add_user(gateway, "ann", ("project", "checkout", "viewer"))
    with httpx.Client(base_url=gateway.url) as client:
        first = client.get("/ui/")
        assert first.status_code == 303 and first.headers["location"] == "/ui/login?next=/ui/"
        form = client.get("/ui/login")
        assert form.status_code == 200
        assert 'name="username"' in form.text and 'name="password"' in form.text

        response = login(client, "ann", next="/ui/")
        assert response.status_code == 303 and response.headers["location"] == "/ui/"
        cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "spendgate_session=" in v)
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes
        assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()

        page = client.get("/ui/")
    assert page.status_code == 200
    assert page.text.count('data-testid="project-row"') == 1
    assert "checkout" in page.text
    assert '<span data-testid="total-cost">0.00042</span>' in page.text  # 2 x $0.00021
    # Nothing of the project (or its team) ann holds no role on: not its name, not its spend.
    assert SECRET_PROJECT not in page.text and SECRET_TEAM not in page.text and "0.0021" not in page.text


def test_an_admin_sees_every_project(make_gateway) -> None:
    gateway = make_gateway()
    org_with_traffic(gateway)
    add_user(gateway, "root", admin=True)
    with logged_in(gateway, "root") as client:
        page = client.get("/ui/")
    assert page.text.count('data-testid="project-row"') == 2
    assert '<span data-testid="total-cost">0.00252</span>' in page.text


def test_a_wrong_password_is_refused_and_five_failures_throttle_the_user(make_gateway) -> None:
    clock = Clock()
    gateway = make_gateway(clock=clock)
    add_user(gateway, "ann")
    with httpx.Client(base_url=gateway.url) as client:
        for _ in range(5):
            wrong = login(client, "ann", "not the password")
            assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        # Now even the right password is not checked: the next attempt must wait.
        throttled = login(client, "ann")
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "30"
        assert "spendgate_session=" not in throttled.headers.get("set-cookie", "")
        # An unknown name is answered the same way as a wrong password (nothing tells names apart).
        clock.advance(31)
        assert login(client, "nobody", "whatever-it-is").status_code == 401
        # That failure was the address's sixth in a row: its wait doubles.
        assert login(client, "ann").status_code == 429
        clock.advance(61)
        assert login(client, "ann").status_code == 303
    assert gateway.store.login_failures([("user", "ann")]) == []  # a success clears the user's count


def test_the_login_form_and_logout_need_their_csrf_token(make_gateway) -> None:
    gateway = make_gateway()
    add_user(gateway, "ann")
    with httpx.Client(base_url=gateway.url) as client:
        client.get("/ui/login")
        forged = client.post("/ui/login", data={"username": "ann", "password": PASSWORD})
        assert forged.status_code == 403 and "spendgate_session=" not in forged.headers.get("set-cookie", "")
        wrong = client.post("/ui/login", data={"username": "ann", "password": PASSWORD, "csrf_token": "0" * 64})
        assert wrong.status_code == 403

    with logged_in(gateway, "ann") as client:
        page = client.get("/ui/")
        refused = client.post("/ui/logout")
        assert refused.status_code == 403
        assert client.get("/ui/").status_code == 200  # still logged in
        cookie = client.cookies["spendgate_session"]
        out = client.post("/ui/logout", data={"csrf_token": form_token(page)})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert client.get("/ui/").status_code == 303
    # The session ended on the server: the old cookie is worth nothing now.
    with httpx.Client(base_url=gateway.url, cookies={"spendgate_session": cookie}) as replay:
        assert replay.get("/ui/").status_code == 303


def test_sessions_end_when_idle_and_at_their_maximum_age(make_gateway) -> None:
    clock = Clock()
    gateway = make_gateway(clock=clock, session_idle_timeout=600, session_max_age=1800)
    add_user(gateway, "ann")
    with logged_in(gateway, "ann") as client:
        for _ in range(3):  # used every 500 s: never idle for 600 s
            clock.advance(500)
            assert client.get("/ui/").status_code == 200
        clock.advance(301)  # 1,801 s after logging in
        assert client.get("/ui/").status_code == 303

    with logged_in(gateway, "ann") as client:
        clock.advance(599)
        assert client.get("/ui/").status_code == 200
        clock.advance(601)
        assert client.get("/ui/").status_code == 303


def test_a_forged_cookie_and_a_password_change_end_sessions(make_gateway) -> None:
    from spendgate.access import accounts
    from spendgate.access.passwords import Passwords

    gateway = make_gateway()
    add_user(gateway, "ann")
    with logged_in(gateway, "ann") as client:
        cookie = client.cookies["spendgate_session"]
        session_id = cookie.rsplit(".", 1)[0]
        with httpx.Client(base_url=gateway.url, cookies={"spendgate_session": session_id + ".forged"}) as forger:
            assert forger.get("/ui/").status_code == 303
        accounts.set_password(gateway.store, Passwords(), "ann", "a brand new password")
        assert client.get("/ui/").status_code == 303


def test_secure_cookies_behind_https(make_gateway) -> None:
    gateway = make_gateway(secure_cookies=True)
    add_user(gateway, "ann")
    with httpx.Client(base_url=gateway.url) as client:
        form = client.get("/ui/login")
        assert "__Host-spendgate_login=" in form.headers["set-cookie"]
        assert "secure" in form.headers["set-cookie"].lower()
        token = form_token(form)
        # httpx keeps a Secure cookie from plain http: send the login cookie by hand.
        nonce = form.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        response = client.post(
            "/ui/login",
            data={"username": "ann", "password": PASSWORD, "csrf_token": token},
            headers={"cookie": f"__Host-spendgate_login={nonce}"},
        )
    assert response.status_code == 303
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "spendgate_session=" in v)
    assert cookie.startswith("__Host-spendgate_session=") and "secure" in cookie.lower()


def test_pages_are_not_framed_sniffed_or_cached_and_bodies_are_bounded(make_gateway) -> None:
    gateway = make_gateway()
    add_user(gateway, "ann")
    with httpx.Client(base_url=gateway.url) as client:
        form = client.get("/ui/login")
        assert form.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
        assert form.headers["x-content-type-options"] == "nosniff"
        assert form.headers["cache-control"] == "no-store"
        assert client.post("/ui/login", content=b"username=" + b"a" * 100_000).status_code == 413

        def chunks():
            for _ in range(100):
                yield b"a" * 1024

        form_type = {"content-type": "application/x-www-form-urlencoded"}
        assert client.post("/ui/login", content=chunks(), headers=form_type).status_code == 413  # chunked
        # After logging in, only a dashboard path is a place to return to: never another site.
        response = login(client, "ann", next="https://evil.example/")
    assert response.status_code == 303 and response.headers["location"] == "/ui/"


def test_the_gateway_still_answers_what_is_not_the_dashboard(gateway) -> None:
    assert httpx.get(f"{gateway.url}/uifoo").status_code == 404
    assert httpx.get(f"{gateway.url}/ui", follow_redirects=False).headers["location"] == "/ui/"
    assert httpx.get(f"{gateway.url}/ui/nothing-here").status_code == 404
