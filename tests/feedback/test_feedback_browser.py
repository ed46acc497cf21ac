"""Acceptance: the feedback page in headless Chromium with JavaScript off (0-10 page from the
SMS link, one tap, comment form, already-recorded and tampered pages); screenshots go to
tests/artifacts/ for a look."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hub.models import FeedbackResponse
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import api_key, event, free_port, make_runtime, read_outbox, served
from tests.preferences.test_preference_center_browser import ARTIFACTS, CHROMIUM_ARGS, _chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, HubRuntime]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runtime = make_runtime(database_url, tmp_path, public_base_url=base)
    with served(runtime, port):
        yield base, runtime


def _sms_link(base: str, runtime: HubRuntime, locale: str) -> str:
    headers = {"Authorization": f"Bearer {api_key(runtime)}"}
    body = event(f"fb-{locale}", "parcel.feedback_request",
                 customer={"id": f"c-{locale}", "phone": "+48512345678", "locale": locale})
    with httpx.Client(base_url=base, headers=headers) as http:
        http.post("/v1/events", json=body).raise_for_status()
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    texts = [m["parts"]["body"] for m in read_outbox(Path(runtime.settings.console_outbox_path))
             if m.get("channel") == "sms"]
    return re.findall(r"(http://\S+/f/\S+)", texts[-1])[0]


def test_feedback_page_in_chromium(server: tuple[str, HubRuntime]) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    base, runtime = server
    link = _sms_link(base, runtime, "pl")
    ARTIFACTS.mkdir(exist_ok=True)
    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(java_script_enabled=False,
                                      viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.goto(link)
        assert page.locator("html").get_attribute("lang") == "pl"
        assert page.locator(".scale a").count() == 11
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no side-scroll
        page.screenshot(path=ARTIFACTS / "feedback-choose-pl.png", full_page=True)
        three = page.get_by_role("link", name="3 / 10").get_attribute("href")
        page.get_by_role("link", name="9 / 10").click()
        assert page.get_by_role("heading", name="Dziękujemy za ocenę!").is_visible()
        page.screenshot(path=ARTIFACTS / "feedback-recorded-pl.png", full_page=True)
        page.get_by_label("Chcesz coś dodać? (nieobowiązkowe)").fill("Szybko i sprawnie.")
        page.get_by_role("button", name="Wyślij komentarz").click()
        assert page.get_by_role("heading", name="Dziękujemy za komentarz!").is_visible()
        page.goto(link)  # the 0-10 page now says it is recorded
        assert page.locator(".scale a").count() == 0 and page.get_by_role("status").is_visible()
        page.goto(f"{base}{three}")  # another score's one-tap link: nothing new either
        assert page.get_by_role("status").is_visible()
        page.screenshot(path=ARTIFACTS / "feedback-already-pl.png", full_page=True)
        page.goto(link[:-3] + "abc")
        assert page.get_by_role("alert").is_visible()
        page.screenshot(path=ARTIFACTS / "feedback-tampered-pl.png")
        desktop = browser.new_context(java_script_enabled=False,
                                      viewport={"width": 1280, "height": 800})
        wide = desktop.new_page()
        wide.goto(_sms_link(base, runtime, "de"))
        assert wide.locator("html").get_attribute("lang") == "de"
        wide.screenshot(path=ARTIFACTS / "feedback-choose-de.png", full_page=True)
        browser.close()
    with runtime.db.sessions() as session:
        rows = session.scalars(select(FeedbackResponse)).all()
    assert [(r.score, r.comment) for r in rows] == [(9, "Szybko i sprawnie.")]
