"""The marketer page in headless Chromium: Ukrainian SMS for ready_for_pickup, live counter."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.keys import Scope
from tests.helpers import api_key, free_port, make_runtime, served

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
pytestmark = pytest.mark.browser



@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    marketer = api_key(runtime, Scope.TEMPLATES_READ, producer="marketing-team")
    outsider = api_key(runtime, Scope.EVENTS_WRITE, producer="parcel-system")
    with served(runtime, free_port()) as base:
        yield base, marketer, outsider


@pytest.fixture
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        import os

        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


def test_ukrainian_sms_for_ready_for_pickup(server, browser):
    base, marketer, outsider = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{base}/ui/templates")
    assert page.url.endswith("/ui/login")  # not logged in: redirected

    page.fill("#api_key", outsider)  # a key without templates:read is refused
    page.click("button[type=submit]")
    assert "templates:read" in page.inner_text("[role=alert]")

    page.fill("#api_key", marketer)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/templates")

    # Each select re-renders the page (progressive JS submits the form on change).
    with page.expect_navigation():
        page.select_option("#event_type", "parcel.ready_for_pickup")
    with page.expect_navigation():
        page.select_option("#channel", "sms")
    with page.expect_navigation():
        page.select_option("#locale", "uk")
    with page.expect_navigation():
        page.select_option("#tone", "informal")

    bubble = page.input_value("#sms-text")
    assert bubble.startswith("Твоя посилка PL0001234567 чекає на отримання")
    assert "Код: 482913" in bubble and "завтра, 19:40" in bubble
    counter = page.inner_text("#sms-counter")
    assert counter.startswith("UCS-2") and "2 SMS" in counter and "limit 3" in counter
    assert "sms_ucs2" in page.inner_text("#warnings")
    assert page.locator("table.matrix .missing").count() == 0
    page.screenshot(path=str(ARTIFACTS / "templates-uk-sms-ready_for_pickup.png"), full_page=False)

    # Live counter: shortening the text to 70 code units makes it one UCS-2 segment,
    # and plain ASCII flips it to GSM-7.
    page.fill("#sms-text", "Посилка " + "ж" * 62)
    assert page.inner_text("#sms-counter").startswith("UCS-2 · 70 jednostek UTF-16 · 1 SMS")
    page.fill("#sms-text", "a" * 161)
    assert page.inner_text("#sms-counter").startswith("GSM-7 · 161 septetów GSM-7 · 2 SMS")
    assert "over" not in (page.get_attribute("#sms-counter", "class") or "")
    page.fill("#sms-text", "a" * 460)  # 4 parts of 153 > the budget of 3
    assert page.inner_text("#sms-counter").startswith("GSM-7 · 460 septetów GSM-7 · 4 SMS")
    assert "over" in (page.get_attribute("#sms-counter", "class") or "")
    page.fill("#sms-text", "€" * 80)
    assert page.inner_text("#sms-counter").startswith("GSM-7 · 160 septetów GSM-7 · 1 SMS")
    page.screenshot(path=str(ARTIFACTS / "templates-live-counter.png"))


def test_email_and_push_previews(server, browser):
    base, marketer, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(f"{base}/ui/login")
    page.fill("#api_key", marketer)
    page.click("button[type=submit]")
    page.goto(f"{base}/ui/templates?event_type=parcel.ready_for_pickup&channel=email"
              "&locale=pl&tone=formal")
    frame = page.frame_locator("iframe")
    assert "Przesyłka czeka na odbiór" in frame.locator("h1").inner_text()
    assert frame.locator("a.btn").get_attribute("href").startswith("https://track.example.pl/")
    assert page.get_attribute("iframe", "sandbox") == ""
    assert "Kod odbioru: 482913" in page.inner_text("#email-text")
    page.screenshot(path=str(ARTIFACTS / "templates-pl-email-ready_for_pickup.png"),
                    full_page=True)
    page.goto(f"{base}/ui/templates?event_type=parcel.out_for_delivery&channel=push"
              "&locale=de&tone=informal")
    assert "Heute in Zustellung" in page.inner_text(".push")
    page.screenshot(path=str(ARTIFACTS / "templates-de-push.png"))
    page.goto(f"{base}/ui/templates?event_type=parcel.ready_for_pickup&channel=inbox"
              "&locale=uk&tone=formal")
    assert "поштомату" in page.inner_text("#inbox-body")  # the longer inbox text
    page.goto(f"{base}/ui/templates?event_type=parcel.ready_for_pickup&channel=app_push"
              "&locale=pl&tone=informal")
    assert "482913" in page.inner_text(".push")
    page.screenshot(path=str(ARTIFACTS / "templates-pl-app_push.png"))
