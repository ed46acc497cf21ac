"""Marketer page sessions: the cookie carries a random session id (never the API key),
logout and key revocation end it server-side, admin keys cannot log in, CSRF is checked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hub.api.app import create_app
from hub.db import utcnow
from hub.keys import Scope
from hub.models import ApiKey, UiSession
from hub.runtime import HubRuntime
from tests.conftest import IN_CI
from tests.helpers import api_key, free_port, make_runtime, served

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def hub(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, HubRuntime]]:
    runtime = make_runtime(database_url, tmp_path)
    with TestClient(create_app(runtime)) as client:
        yield client, runtime
    runtime.db.dispose()


def _login(client: TestClient, key: str, **headers: str):
    return client.post("/ui/login", data={"api_key": key}, headers=headers,
                       follow_redirects=False)


def _page_ok(client: TestClient) -> bool:
    reply = client.get("/ui/templates", follow_redirects=False)
    return reply.status_code == 200 and "Wyloguj" in reply.text


def test_cookie_is_a_session_id_not_the_key(hub) -> None:
    client, runtime = hub
    key = api_key(runtime, Scope.TEMPLATES_READ)
    reply = _login(client, key)
    assert reply.status_code == 303
    cookie = reply.headers["set-cookie"]
    assert "hub_ui_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http and HUB_COOKIE_SECURE unset
    value = client.cookies.get("hub_ui_session")
    _, key_id, secret = key.split("_", 2)  # hub_<key id>_<secret>; the secret may hold "_"
    assert secret not in value and key_id not in value
    with runtime.db.sessions() as session:
        (row,) = session.scalars(select(UiSession)).all()
    assert value not in (row.token_hash, row.key_id) and row.key_id == key_id
    assert timedelta(hours=7.9) < row.expires_at - row.created_at <= timedelta(hours=8)
    assert _page_ok(client)


def test_admin_keys_cannot_log_in(hub) -> None:
    client, runtime = hub
    reply = _login(client, api_key(runtime, Scope.ADMIN))
    assert reply.status_code == 403 and "admin" in reply.text
    assert "hub_ui_session" not in reply.headers.get("set-cookie", "")
    both = _login(client, api_key(runtime, Scope.TEMPLATES_READ, Scope.ADMIN))
    assert both.status_code == 403
    assert _login(client, api_key(runtime, Scope.EVENTS_WRITE)).status_code == 401


def test_revoking_the_key_or_expiry_ends_the_session(hub) -> None:
    client, runtime = hub
    key = api_key(runtime, Scope.TEMPLATES_READ)
    _login(client, key)
    assert _page_ok(client)
    with runtime.db.transaction() as session:
        session.execute(update(ApiKey).values(revoked_at=utcnow()))
    assert not _page_ok(client)
    with runtime.db.transaction() as session:
        session.execute(update(ApiKey).values(revoked_at=None))
    assert _page_ok(client)
    with runtime.db.transaction() as session:
        session.execute(update(UiSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert not _page_ok(client)


def test_logout_needs_the_csrf_token_and_invalidates_server_side(hub) -> None:
    client, runtime = hub
    _login(client, api_key(runtime, Scope.TEMPLATES_READ))
    cookie = client.cookies.get("hub_ui_session")
    page = client.get("/ui/templates").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert client.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    assert client.post("/ui/logout", data={"csrf": csrf},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    assert _page_ok(client)  # neither attempt logged out
    out = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    client.cookies.set("hub_ui_session", cookie, path="/ui")  # replay the old cookie
    assert not _page_ok(client)


def test_cross_site_login_is_refused_and_secure_by_configuration(database_url, tmp_path
                                                                  ) -> None:
    runtime = make_runtime(database_url, tmp_path, cookie_secure=True, ui_session_hours=1)
    with TestClient(create_app(runtime)) as client:
        key = api_key(runtime, Scope.TEMPLATES_READ)
        assert _login(client, key, origin="https://evil.example").status_code == 403
        reply = _login(client, key, origin="http://testserver")
        assert reply.status_code == 303
        assert "Secure" in reply.headers["set-cookie"]
        assert "Max-Age=3600" in reply.headers["set-cookie"]
    runtime.db.dispose()


@pytest.mark.browser
def test_login_logout_in_chromium(tmp_path: Path) -> None:
    executable = shutil.which("chromium")
    if executable is None:
        if IN_CI:
            pytest.fail("chromium is required in CI")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    marketer = api_key(runtime, Scope.TEMPLATES_READ, producer="marketing-team")
    admin = api_key(runtime, Scope.ADMIN, producer="ops")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with served(runtime, free_port()) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"])
            _browse(browser, base, marketer, admin)
            browser.close()
    finally:
        runtime.db.dispose()


def _browse(browser, base: str, marketer: str, admin: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/ui/templates")
    assert page.url.endswith("/ui/login")
    page.screenshot(path=str(ARTIFACTS / "ui-login.png"))
    page.fill("#api_key", admin)  # the Origin header is sent by the browser: same site
    page.click("button[type=submit]")
    assert "admin" in page.inner_text("[role=alert]")
    page.screenshot(path=str(ARTIFACTS / "ui-login-admin-refused.png"))
    page.fill("#api_key", marketer)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/templates")
    assert "marketing-team" in page.inner_text("header")
    page.screenshot(path=str(ARTIFACTS / "ui-logged-in.png"))
    (cookie,) = [c for c in context.cookies() if c["name"] == "hub_ui_session"]
    assert marketer not in cookie["value"] and marketer.split("_", 2)[2] not in cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/ui"
    assert page.evaluate("document.cookie") == ""  # not readable by scripts
    page.click("header button[type=submit]")
    page.wait_for_url("**/ui/login")
    page.go_back()  # no-store: the browser asks again and gets the login page
    page.wait_for_load_state()
    assert page.url.endswith("/ui/login") and page.locator("#api_key").count() == 1
    replay = browser.new_context()
    replay.add_cookies([cookie])
    again = replay.new_page()
    again.goto(f"{base}/ui/templates")
    assert again.url.endswith("/ui/login")
    context.close()
    replay.close()
