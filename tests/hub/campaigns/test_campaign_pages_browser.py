"""The campaign pages in headless Chromium: create an audience (live count) and a campaign
with two variants (live preview) and a holdout, send it through the real pipeline (console
channel), follow tracked links and post conversions over HTTP, and open the results with a
chart per variant; screenshots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hub.campaigns.runner import CampaignLoop
from hub.db import utcnow
from hub.keys import Scope
from hub.models import CampaignRecipient
from hub.worker import Worker
from tests.helpers import api_key, free_port, make_runtime, read_outbox, served
from tests.hub.campaigns.builders import add_customers
from tests.templates.test_marketer_page import ARTIFACTS, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
N, CONSENTING = 40, 30


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[dict]:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    add_customers(runtime.db, N, consent=lambda i: i < CONSENTING)
    key = api_key(runtime, Scope.TEMPLATES_READ, Scope.CAMPAIGNS_READ, Scope.CAMPAIGNS_WRITE,
                  Scope.AUDIENCES_READ, Scope.AUDIENCES_WRITE, producer="marketing-team")
    shop = api_key(runtime, Scope.CONVERSIONS_WRITE, producer="shop")
    with served(runtime, free_port()) as base:
        yield {"base": base, "runtime": runtime, "key": key, "shop": shop, "tmp": tmp_path}
    runtime.db.dispose()


def send_all(runtime) -> None:
    """What `hub serve` does in the background: the campaign runner queues the recipients,
    the worker sends them."""
    loop = CampaignLoop(runtime.db)
    while loop.run_once():
        pass
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain(timeout=60)


def click_and_buy(base: str, key: str, emails: list[dict], subject: str) -> int:
    """Three readers of one variant follow its tracked link (a 302 to the offer) and two of
    them buy: conversions posted by the shop's backend, attributed to their click."""
    readers = [m for m in emails if m["parts"]["subject"] == subject][:3]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        for message in readers:
            link = re.search(r"/c/[0-9A-Za-z]+", message["parts"]["text"])
            assert link, message["parts"]["text"]
            reply = http.get(link.group(0), headers={"Authorization": ""})
            assert reply.status_code == 302
            assert reply.headers["location"] == "https://parcelhub.example/oferta"
        for n, message in enumerate(readers[:2]):
            customer = message["to"].split("@")[0]  # c<i>@example.pl is customer c<i>
            reply = http.post("/v1/conversions", json={
                "external_id": f"order-{n}", "customer_id": customer, "value": "49.90",
                "currency": "PLN", "occurred_at": (utcnow() + timedelta(seconds=1)).isoformat()})
            assert reply.status_code == 201, reply.text
            assert reply.json()["attribution"]["variant"] == "a"  # attributed through the click
    return len(readers)


def fill_variant(page, i: int, name: str, subject: str) -> None:
    page.fill(f"input[name='v{i}.name']", name)
    page.fill(f"[name='v{i}.pl.email.subject']", subject)
    page.fill(f"[name='v{i}.pl.email.heading']", "Dzień dobry, {{ customer.name }}")
    page.fill(f"[name='v{i}.pl.email.body']", "Nadaj paczkę taniej do niedzieli.")
    page.fill(f"[name='v{i}.pl.email.button']", "Sprawdź ofertę")
    page.fill(f"[name='v{i}.pl.url']", "https://parcelhub.example/oferta")


def test_create_send_and_read_results(hub, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{hub['base']}/ui/login")
    page.fill("#api_key", hub["key"])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/templates")
    page.goto(f"{hub['base']}/ui/campaigns")
    assert "Nie ma jeszcze kampanii" in page.inner_text("main")
    with page.expect_navigation():
        page.click("#new-campaign")

    # the audience: the count follows every edit (the example filter: e-mail consent; then
    # the helper: Polish speakers, then Polish speakers with marketing e-mail consent)
    page.wait_for_selector(f"#audience-count[data-count='{CONSENTING}']")
    page.fill("#audience_name", "Zgoda na e-mail")
    page.select_option("#f-locale", "pl")
    page.wait_for_selector(f"#audience-count[data-count='{N}']")
    page.check(".f-consent[value=email]")
    page.wait_for_selector(f"#audience-count[data-count='{CONSENTING}']")
    assert f"email {CONSENTING}" in page.inner_text("#audience-count")

    page.fill("#name", "Grudniowa promocja")
    page.fill("#holdout_percent", "30")  # 30 % of 30: an empty holdout (p ≈ 2e-5) is not a risk
    fill_variant(page, 0, "a", "Wysyłka -20% do niedzieli")
    fill_variant(page, 1, "b", "Taniej o 20%")
    page.wait_for_function(  # the live preview of variant b shows its subject
        "() => document.querySelector('#preview-v1 [data-cell=\"pl.email\"]')"
        "?.textContent.includes('Taniej o 20%')")
    page.screenshot(path=str(ARTIFACTS / "campaign-new.png"), full_page=True)
    with page.expect_navigation():
        page.click("#create")
    assert page.inner_text("#campaign-state") == "szkic"
    campaign_id = int(page.url.split("/ui/campaigns/")[1].split("?")[0])

    with page.expect_navigation():
        page.click("#action-start")
    assert page.inner_text("#campaign-state") == "zaplanowana"
    send_all(hub["runtime"])
    emails = [m for m in read_outbox(hub["tmp"] / "outbox.jsonl") if m["channel"] == "email"]
    subjects = {m["parts"]["subject"] for m in emails}
    assert subjects == {"Wysyłka -20% do niedzieli", "Taniej o 20%"}
    with hub["runtime"].db.sessions() as session:  # everyone but the holdout got one
        variants = session.scalars(select(CampaignRecipient.variant).where(
            CampaignRecipient.campaign_id == campaign_id)).all()
    assert len(variants) == CONSENTING and "holdout" in variants
    assert len(emails) == sum(v != "holdout" for v in variants)
    clicked = click_and_buy(hub["base"], hub["shop"], emails, "Wysyłka -20% do niedzieli")

    page.reload()
    assert page.inner_text("#campaign-state") == "zakończona"
    variant_a = page.inner_text("#results tr[data-group='a']")
    assert f"\t{clicked}\t0\t2\t" in variant_a  # clicked, unsubscribed, converted
    assert "grupa kontrolna" in page.inner_text("#results tr[data-group='holdout']")
    charts = page.locator("figure.chart")
    assert charts.count() == 2  # one per variant, each against the holdout
    assert page.locator("figure.chart[data-variant='a'] line.ci").count() == 2  # intervals
    page.screenshot(path=str(ARTIFACTS / "campaign-results.png"), full_page=True)

    page.goto(f"{hub['base']}/ui/campaigns/{campaign_id}?lang=en")
    assert page.inner_text("#campaign-state") == "completed"
    assert "holdout" in page.inner_text("#results")
    page.screenshot(path=str(ARTIFACTS / "campaign-results-en.png"), full_page=True)
    page.goto(f"{hub['base']}/ui/campaigns?lang=en")
    assert "Grudniowa promocja" in page.inner_text("#campaigns")
