"""Tracked links of campaign and loyalty messages (`/c/<token>`), clicks and conversions
with last-click attribution. Hostile input first: forged tokens, other tenants' customers,
impossible amounts and times."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub import clicks
from hub.api.app import create_app
from hub.audience_models import Conversion, LinkClick, TrackedLink
from hub.keys import Scope, create_key
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import api_key, event

BROWSER = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)"}
ANNA = {"name": "Anna", "phone": "+48512345678", "email": "anna@example.pl",
        "phone_verified": True, "email_verified": True}
OFFER = "https://shop.example.pl/promo?utm=sms&x=1"


@pytest.fixture
def database_url(tmp_path: Path) -> str:  # link logic is the same on both stores
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def client(runtime: HubRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        c.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        yield c


def _campaign(client: TestClient, runtime: HubRuntime, channel: str, event_id: str = "m-1",
              customer: str = "c-1") -> dict[str, Any]:
    """Anna (consent on `channel`) gets a campaign message; returns what the provider got."""
    client.put(f"/v1/customers/{customer}", json=ANNA)
    client.put(f"/v1/customers/{customer}/preferences",
               json={"channels": {"marketing": [channel]}})
    client.post(f"/v1/customers/{customer}/consents", json={
        "purpose": "marketing", "channel": channel, "action": "granted", "source": "checkout"})
    body = event(event_id, "marketing.campaign", customer={"id": customer},
                 data={"title": "Promo", "url": OFFER, "campaign": {"id": 7, "variant": "B"}})
    body.pop("parcel")
    assert client.post("/v1/events", json=body).status_code == 202
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    lines = Path(runtime.settings.console_outbox_path or "").read_text().splitlines()
    return dict(json.loads(lines[-1]))


def _token(message: dict[str, Any]) -> str:
    found = re.findall(r"/c/([0-9A-Za-z]+)", json.dumps(message))
    assert found, message
    return str(found[0])


def test_a_forged_or_unknown_token_gets_a_friendly_404_and_costs_no_lookup(
        client: TestClient, runtime: HubRuntime) -> None:
    secret = runtime.settings.secret_key.get_secret_value()
    real = clicks.token_of(secret, clicks.link_id(secret, "k", OFFER))  # valid, never stored
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    for token, lang, word in ((forged, "pl-PL,pl;q=0.9", "nie działa"),
                              (real, "en-GB,en;q=0.8", "does not work"),
                              ("x" * 300, "de", "funktioniert nicht"),
                              ("evil.example", "uk", "не працює")):
        reply = client.get(f"/c/{token}", headers={"Accept-Language": lang, **BROWSER},
                           follow_redirects=False)
        assert reply.status_code == 404 and word in reply.text
        assert "location" not in reply.headers
    assert clicks.read_token(secret, forged) is None


def test_sms_link_is_short_and_redirects_only_to_the_stored_url(client: TestClient,
                                                                runtime: HubRuntime) -> None:
    sent = _campaign(client, runtime, "sms")
    assert OFFER not in sent["parts"]["body"]
    path = re.search(r"(/c/\S+)", sent["parts"]["body"]).group(1)  # type: ignore[union-attr]
    assert len(path) <= 20 and len(_token(sent)) == clicks.TOKEN_CHARS
    reply = client.get(f"{path}?url=https://evil.example", headers=BROWSER,
                       follow_redirects=False)
    assert reply.status_code == 302 and reply.headers["location"] == OFFER
    with runtime.db.sessions() as session:
        link = session.scalars(select(TrackedLink)).one()
        assert (link.campaign_id, link.variant, link.channel) == (7, "B", "sms")
        click = session.scalars(select(LinkClick)).one()
        assert (click.campaign_id, click.variant) == (7, "B")


def test_email_html_and_text_links_are_tracked_but_the_hubs_own_links_are_not(
        client: TestClient, runtime: HubRuntime) -> None:
    sent = _campaign(client, runtime, "email")
    html, text = sent["parts"]["html"], sent["parts"]["text"]
    assert OFFER not in html and OFFER.replace("&", "&amp;") not in html and OFFER not in text
    assert "/u/" in html  # the unsubscribe link goes straight to the hub
    assert set(re.findall(r"/c/([0-9A-Za-z]+)", html)) == set(
        re.findall(r"/c/([0-9A-Za-z]+)", text))  # one URL, one token in both parts
    with runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(TrackedLink)) == 1


def test_a_retried_send_reuses_its_link_rows(client: TestClient, runtime: HubRuntime) -> None:
    sent = _campaign(client, runtime, "sms")
    with runtime.db.transaction() as session:
        link = session.scalars(select(TrackedLink)).one()
        secret = runtime.settings.secret_key.get_secret_value()
        again = clicks.LinkRewriter(secret, runtime.settings.public_base_url, link.send_key or "",
                                    clicks.LinkSet(7, "B"))
        assert again.track_url(OFFER).endswith(_token(sent))  # same send, same token

        class Retried:  # the fields record_links reads of a Send
            key, links = link.send_key, again.links
            env = type("Env", (), {"tenant": "default", "customer_id": "c-1", "event_pk":
                                   link.event_pk, "channel": "sms"})()

        clicks.record_links(session, [Retried()])  # type: ignore[list-item]
        assert session.scalar(select(func.count()).select_from(TrackedLink)) == 1


@pytest.mark.parametrize("method, agent", [
    ("HEAD", BROWSER["User-Agent"]),
    ("GET", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
    ("GET", "WhatsApp/2.23.20.0"),
    ("GET", ""),
])
def test_previews_and_head_requests_redirect_but_do_not_count(
        client: TestClient, runtime: HubRuntime, method: str, agent: str) -> None:
    token = _token(_campaign(client, runtime, "sms"))
    reply = client.request(method, f"/c/{token}", headers={"User-Agent": agent},
                           follow_redirects=False)
    assert reply.status_code == 302
    with runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LinkClick)) == 0


def test_a_repeat_click_within_the_window_counts_once(client: TestClient,
                                                      runtime: HubRuntime) -> None:
    token = _token(_campaign(client, runtime, "sms"))
    for _ in range(3):
        client.get(f"/c/{token}", headers=BROWSER, follow_redirects=False)
    with runtime.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LinkClick)) == 1
        later = datetime.now(UTC) + clicks.REPEAT_WINDOW + timedelta(seconds=1)
        assert clicks.follow(session, token[:clicks.ID_CHARS], counted=True, now=later
                             ).counted  # type: ignore[union-attr]


def _conversion(**over: Any) -> dict[str, Any]:
    return {"external_id": "order-1", "customer_id": "c-1", "value": "149.99",
            "currency": "PLN", "occurred_at": datetime.now(UTC).isoformat(), **over}


def test_a_conversion_is_credited_to_the_last_click_and_is_idempotent(
        client: TestClient, runtime: HubRuntime) -> None:
    token = _token(_campaign(client, runtime, "sms"))
    client.get(f"/c/{token}", headers=BROWSER, follow_redirects=False)
    body = _conversion()
    first = client.post("/v1/conversions", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["attribution"]["campaign_id"] == 7
    assert first.json()["attribution"]["variant"] == "B"
    again = client.post("/v1/conversions", json=body)
    assert (again.status_code, again.json()) == (200, first.json())
    other = client.post("/v1/conversions", json={**body, "value": "1.00"})
    assert other.status_code == 409
    before = client.post("/v1/conversions", json=_conversion(
        external_id="order-0", occurred_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat()))
    assert before.json()["attribution"] == {"campaign_id": None, "variant": None,
                                            "click_id": None}  # it happened before the click
    with runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Conversion)) == 2
    export = client.get("/v1/customers/c-1/export").json()["marketing"]
    assert export["activity"]["conversions_count"] == 2
    assert export["clicks"][0]["url"] == OFFER


def test_a_click_outside_the_window_gets_no_credit(client: TestClient,
                                                   runtime: HubRuntime) -> None:
    token = _token(_campaign(client, runtime, "sms"))
    client.get(f"/c/{token}", headers=BROWSER, follow_redirects=False)
    late = datetime.now(UTC) + timedelta(days=8)
    with runtime.db.transaction() as session:
        from hub import conversions

        row, _ = conversions.record(session, "default", conversions.ConversionIn(
            "late", "c-1", session.scalars(select(LinkClick.customer_pk)).one(),
            __import__("decimal").Decimal("1"), "PLN", late), timedelta(days=7))
        assert row.click_id is None and row.campaign_id is None


@pytest.mark.parametrize("over", [
    {"value": "1" * 30},  # 30-digit amount
    {"value": "1.999"},
    {"value": "-5"},
    {"value": "NaN"},
    {"currency": "zloty"},
    {"occurred_at": "9999-12-31T23:59:59+00:00"},
    {"occurred_at": (datetime.now(UTC) + timedelta(minutes=10)).isoformat()},
    {"occurred_at": "2020-01-01T00:00:00+00:00"},
    {"occurred_at": "2026-12-01T10:00:00"},  # no offset
    {"campaign_id": 2**40},
    {"tenant": "acme"},
])
def test_impossible_conversions_are_422_and_write_nothing(
        client: TestClient, runtime: HubRuntime, over: dict[str, Any]) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    reply = client.post("/v1/conversions", json=_conversion(**over))
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    with runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Conversion)) == 0


def test_conversions_need_the_scope_and_never_reach_another_tenants_customer(
        client: TestClient, runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    acme = TestClient(create_app(runtime))
    acme.headers["Authorization"] = "Bearer " + create_key(
        runtime.db, "acme", [Scope.CONVERSIONS_WRITE], tenant="acme")
    assert acme.post("/v1/conversions", json=_conversion()).status_code == 404
    reader = TestClient(create_app(runtime))
    reader.headers["Authorization"] = "Bearer " + api_key(runtime, Scope.EVENTS_READ,
                                                          producer="r")
    assert reader.post("/v1/conversions", json=_conversion()).status_code == 403


def test_the_open_pixel_is_off_by_default_and_counts_one_open_when_on(
        client: TestClient, runtime: HubRuntime) -> None:
    assert "/o/" not in _campaign(client, runtime, "email")["parts"]["html"]
    runtime.settings.email_open_pixel = True
    html = _campaign(client, runtime, "email", event_id="m-2")["parts"]["html"]
    pixel = re.search(r'src="[^"]*(/o/[^"]+\.gif)"', html).group(1)  # type: ignore[union-attr]
    for _ in range(2):
        reply = client.get(pixel, headers=BROWSER)
        assert reply.headers["content-type"] == "image/gif"
    assert client.get("/o/forged.gif").content == clicks.PIXEL_GIF
    notes = client.get("/v1/events/m-2").json()["notifications"]
    assert [h["status"] for h in notes[0]["history"]].count("opened") == 1
    with runtime.db.sessions() as session:
        from hub.models import Notification

        opened = session.scalars(select(Notification.opened_at).where(
            Notification.event_type == "marketing.campaign")).all()
        assert sum(o is not None for o in opened) == 1


def test_a_link_id_taken_by_another_send_leaves_the_original_url_in_the_message(
        client: TestClient, runtime: HubRuntime) -> None:
    from hub.delivery import idempotency_key

    secret = runtime.settings.secret_key.get_secret_value()
    key = idempotency_key(secret, 1, "sms", ANNA["phone"])  # the campaign's send record
    client.put("/v1/customers/other", json=ANNA)
    with runtime.db.transaction() as session:  # an older link that happens to have that id
        from hub.models import Customer

        other = session.scalars(select(Customer.id).where(Customer.external_id == "other")).one()
        session.add(TrackedLink(token=clicks.link_id(secret, key, OFFER), customer_pk=other,
                                send_key="another-send", url="https://elsewhere.example/x"))
    sent = _campaign(client, runtime, "sms")
    assert OFFER in sent["parts"]["body"] and "/c/" not in sent["parts"]["body"]
    notes = client.get("/v1/events/m-1").json()["notifications"]
    assert notes[0]["status"] == "sent"
    with runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(TrackedLink)) == 1
