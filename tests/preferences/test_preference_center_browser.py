"""Acceptance: the preference center in headless Chromium, with JavaScript switched off."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hub.customers import get_customer
from hub.models import ConsentRecord
from hub.runtime import HubRuntime
from tests.conftest import IN_CI
from tests.helpers import api_key, free_port, make_runtime, served

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if IN_CI:
            pytest.fail("chromium is not installed (required in CI)")
        pytest.skip("chromium is not installed")
    return path



@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, HubRuntime]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runtime = make_runtime(database_url, tmp_path, public_base_url=base)
    with served(runtime, port):
        yield base, runtime


def test_preference_center_in_chromium(server: tuple[str, HubRuntime]) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    base, runtime = server
    headers = {"Authorization": f"Bearer {api_key(runtime)}"}
    with httpx.Client(base_url=base, headers=headers) as http:
        http.put("/v1/customers/c-1001", json={
            "name": "Anna Kowalska", "phone": "+48512345678", "email": "anna@example.pl",
            "phone_verified": True, "locale": "pl"}).raise_for_status()
        for channel in ("sms", "email"):
            http.post("/v1/customers/c-1001/consents", json={
                "purpose": "marketing", "channel": channel, "action": "granted",
                "source": "checkout"}).raise_for_status()
        link = http.post("/v1/customers/c-1001/preference-link").json()["url"]
    ARTIFACTS.mkdir(exist_ok=True)
    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(java_script_enabled=False,
                                      viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.goto(link)
        assert page.locator("html").get_attribute("lang") == "pl"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no side-scroll
        page.screenshot(path=ARTIFACTS / "preference-center-pl.png", full_page=True)

        page.get_by_role("link", name="Українська").click()
        assert page.locator("html").get_attribute("lang") == "uk"
        assert page.get_by_label("Мова повідомлень").input_value() == "uk"
        marketing = page.get_by_role("group", name="Пропозиції та новини")
        assert marketing.get_by_label("SMS").is_checked()
        marketing.get_by_label("SMS").uncheck()
        page.get_by_role("button", name="Зберегти").click()
        assert page.get_by_role("status").inner_text() == "Зміни збережено."
        assert not page.get_by_role("group", name="Пропозиції та новини").get_by_label(
            "SMS").is_checked()
        page.screenshot(path=ARTIFACTS / "preference-center-uk.png", full_page=True)

        for lang in ("en", "de"):
            page.goto(f"{link}?lang={lang}")
            assert page.locator("html").get_attribute("lang") == lang
            page.screenshot(path=ARTIFACTS / f"preference-center-{lang}.png", full_page=True)

        page.goto(link[:-4] + "abcd")
        assert page.get_by_role("alert").is_visible()
        assert page.locator("form").count() == 0
        assert "Anna" not in page.content()
        page.screenshot(path=ARTIFACTS / "preference-center-tampered.png")
        browser.close()

    with runtime.db.sessions() as session:
        customer = get_customer(session, "default", "c-1001")
        assert customer is not None and customer.locale == "uk"
        rows = session.scalars(select(ConsentRecord).where(
            ConsentRecord.customer_id == "c-1001").order_by(ConsentRecord.id)).all()
    assert [(r.channel, r.action, r.source) for r in rows] == [
        ("sms", "granted", "checkout"), ("email", "granted", "checkout"),
        ("sms", "withdrawn", "preference_center")]


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[str, HubRuntime]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, public_base_url=base)
    with served(runtime, port):
        yield base, runtime


def test_preference_center_shows_the_app_channels(sqlite_server: tuple[str, HubRuntime],
                                                  tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    base, runtime = sqlite_server
    headers = {"Authorization": f"Bearer {api_key(runtime)}"}
    with httpx.Client(base_url=base, headers=headers) as http:
        http.put("/v1/customers/c-7", json={"name": "Olena", "locale": "pl"}).raise_for_status()
        http.post("/v1/customers/c-7/devices", json={
            "platform": "android", "token": "fcm:" + "t" * 60,
            "app_id": "pl.example.parcels"}).raise_for_status()
        link = http.post("/v1/customers/c-7/preference-link").json()["url"]
    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_context(java_script_enabled=False,
                                   viewport={"width": 390, "height": 844}).new_page()
        page.goto(link)
        parcels = page.get_by_role("group", name="Informacje o przesyłkach")
        assert parcels.get_by_label("Powiadomienia w aplikacji").is_checked()
        assert parcels.get_by_label("Skrzynka wiadomości w aplikacji").is_checked()
        assert page.locator("#help-app").inner_text().startswith("Skrzynka w aplikacji")
        # the inbox copies every message: it is never offered as the preferred channel
        options = page.locator("#preferred-transactional option").all_inner_texts()
        assert "Powiadomienia w aplikacji" in options
        assert "Skrzynka wiadomości w aplikacji" not in options
        marketing = page.get_by_role("group", name="Oferty i nowości")
        marketing.get_by_label("Powiadomienia w aplikacji").check()
        parcels.get_by_label("Skrzynka wiadomości w aplikacji").uncheck()
        page.get_by_role("button", name="Zapisz").click()
        assert page.get_by_role("status").is_visible()
        for lang, label in (("uk", "Сповіщення в застосунку"), ("de", "Posteingang in der App"),
                            ("en", "App notifications")):
            page.goto(f"{link}?lang={lang}")
            assert page.get_by_label(label).first.is_visible()
        page.goto(link)
        page.screenshot(path=tmp_path / "preference-center-app-pl.png", full_page=True)
        browser.close()
    assert (tmp_path / "preference-center-app-pl.png").stat().st_size > 0
    with runtime.db.sessions() as session:
        customer = get_customer(session, "default", "c-7")
        assert customer is not None
        assert "inbox" not in customer.preferences["channels"]["transactional"]
        rows = session.scalars(select(ConsentRecord).where(
            ConsentRecord.customer_id == "c-7")).all()
    assert [(r.purpose, r.channel, r.action) for r in rows] == [
        ("marketing", "app_push", "granted")]
