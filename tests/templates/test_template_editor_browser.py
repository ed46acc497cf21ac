"""The template editor in headless Chromium: edit, live preview, save, publish (with the
confirmation its warnings ask for), the next message carries the new text; rollback brings
the old text back. Messages go through the real pipeline to the console channel."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.keys import Scope
from hub.worker import Worker
from templates.catalog import CATALOG_DIR
from tests.helpers import api_key, event, free_port, make_runtime, read_outbox, served
from tests.templates.test_marketer_page import ARTIFACTS, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
CATALOG = (CATALOG_DIR / "parcel.ready_for_pickup" / "pl.j2").read_text("utf-8")


def with_sms(text: str) -> str:
    return re.sub(r"\{% block sms %\}.*?\{% endblock %\}",
                  "{% block sms %}" + text + "{% endblock %}", CATALOG, count=1, flags=re.S)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[dict]:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    keys = {"marketer": api_key(runtime, Scope.TEMPLATES_READ, Scope.TEMPLATES_WRITE,
                                Scope.TEMPLATES_PUBLISH, producer="marketing-team"),
            "producer": api_key(runtime, Scope.EVENTS_WRITE, producer="parcel-system")}
    # the worker of "another process": one renderer for the whole test, which must notice
    # each publish, rollback and revert by itself
    worker = make_runtime(runtime.settings.database_url, tmp_path)
    with served(runtime, free_port()) as base:
        yield {"base": base, "runtime": runtime, "worker": worker, "tmp": tmp_path, **keys}
    worker.db.dispose()
    runtime.db.dispose()


def next_sms(hub: dict, event_id: str) -> str:
    """Posts an event over HTTP and lets the other process's worker deliver it; the SMS the
    console channel wrote."""
    import httpx

    reply = httpx.post(f"{hub['base']}/v1/events", json=event(event_id),
                       headers={"Authorization": f"Bearer {hub['producer']}"})
    assert reply.status_code in (200, 201, 202), reply.text
    worker = hub["worker"]
    Worker(worker.db, worker.pipeline, worker.settings).drain(timeout=10)
    return str([m for m in read_outbox(hub["tmp"] / "outbox.jsonl")
                if m["channel"] == "sms"][-1]["parts"]["body"])


def edit_and_publish(page, text: str, shot: str) -> None:
    page.fill("#source", with_sms(text))
    page.wait_for_function(  # the live preview follows the typing
        "t => document.querySelector('#cell-sms-informal .parts').textContent.includes(t)",
        arg=text.split("{")[0].strip()[:12])
    page.screenshot(path=str(ARTIFACTS / f"{shot}-preview.png"), full_page=True)
    with page.expect_navigation():
        page.click("#save")
    assert "Szkic zapisany" in page.inner_text("#message")
    with page.expect_navigation():
        page.locator("#versions tr.draft button").first.click()
    # Polish diacritics make a short SMS UCS-2 (70 characters a part): a warning, so
    # publishing asks first
    assert "sms_ucs2" in page.inner_text("#confirm")
    page.screenshot(path=str(ARTIFACTS / f"{shot}-confirm.png"), full_page=True)
    with page.expect_navigation():
        page.click("#confirm-publish")
    assert "Opublikowano" in page.inner_text("#message")


def test_edit_publish_and_roll_back_from_the_page(hub, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{hub['base']}/ui/login")
    page.fill("#api_key", hub["marketer"])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/templates")
    with page.expect_navigation():
        page.click("#edit-link")
    assert "parcel.ready_for_pickup:pl" in page.title()
    assert "czeka na odbior" in page.inner_text("#cell-sms-formal")  # the catalog file

    # a draft the sandbox refuses shows the problem live and is not saved
    page.fill("#source", "{% block sms %}{{ ''.__class__ }}{% endblock %}")
    page.wait_for_selector("#problem:not([hidden])")
    assert "'_'" in page.inner_text("#problem")

    edit_and_publish(page, "Twoja paczka {{ parcel.tracking_number }} już czeka. Wersja A.",
                     "editor-a")
    assert next_sms(hub, "evt-a") == "Twoja paczka PL0001234567 już czeka. Wersja A."
    edit_and_publish(page, "Paczka {{ parcel.tracking_number }} gotowa. Wersja B, żółta.",
                     "editor-b")
    assert next_sms(hub, "evt-b") == "Paczka PL0001234567 gotowa. Wersja B, żółta."

    # history: who and when, and the diff of v2 against v1
    rows = page.locator("#versions tbody tr")
    assert rows.count() == 2
    assert "marketing-team (page, key" in rows.nth(0).inner_text()
    with page.expect_navigation():
        page.locator("#versions tr[data-version='2'] a.diff-link").click()
    diff = page.inner_text("#diff")
    assert "-{% block sms %}Twoja paczka" in diff and "+{% block sms %}Paczka" in diff

    # rollback to v1 (a new v3 with v1's source): the next message has the old text
    with page.expect_navigation():
        page.locator("#versions tr[data-version='1'] button").click()
    assert page.locator("#versions tr.published").get_attribute("data-version") == "3"
    assert next_sms(hub, "evt-rollback") == "Twoja paczka PL0001234567 już czeka. Wersja A."
    page.screenshot(path=str(ARTIFACTS / "editor-history.png"), full_page=True)

    # English page; revert to the catalog file
    page.goto(f"{hub['base']}/ui/templates/editor?template=parcel.ready_for_pickup:pl&lang=en")
    assert "Revert to the catalog file" in page.inner_text("#unpublish")
    with page.expect_navigation():
        page.click("#unpublish")
    assert "back to the catalog file" in page.inner_text("#message")
    assert "czeka na odbior" in next_sms(hub, "evt-file")
    page.screenshot(path=str(ARTIFACTS / "editor-en-reverted.png"), full_page=True)
