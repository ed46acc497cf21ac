"""Inbound SMS keywords map to a tenant (issue 11, item 1): each tenant's numbers post to
/v1/webhooks/twilio/inbound/{tenant}; the tenant is part of the URL Twilio signs."""

from __future__ import annotations

from sqlalchemy import select

from hub.keys import Scope, create_key
from hub.models import InboundKeyword
from tests.channels.conftest import twilio_settings
from tests.helpers import event

PHONE = "+48512345678"


def _post(hub, signed):
    url, params, sig = signed
    return hub.client.post(url.removeprefix("https://hub.example"), data=params, headers=sig)


def test_stop_to_one_tenants_number_stops_only_that_tenant(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    acme = {"Authorization": f"Bearer {create_key(hub.runtime.db, 'acme-p', [Scope.ADMIN], tenant='acme')}"}
    url = "https://hub.example/v1/webhooks/twilio/inbound/acme"
    stop = fake_twilio.inbound_webhook(url, PHONE, "STOP")
    assert _post(hub, stop).status_code == 200
    forged = fake_twilio.inbound_webhook(url, PHONE, "START")
    moved = (url.replace("/acme", "/default"), forged[1], forged[2])  # signed for acme only
    assert _post(hub, moved).status_code == 403
    with hub.runtime.db.sessions() as session:
        (kw,) = session.scalars(select(InboundKeyword)).all()
        assert (kw.tenant, kw.keyword) == ("acme", "STOP")
    # acme's customer with that number gets no SMS; the default tenant's still does
    hub.client.post("/v1/events", json=event("a-1", customer={"id": "c-1", "phone": PHONE}),
                    headers=acme)
    hub.post(event("d-1", customer={"id": "c-1", "phone": PHONE}))
    hub.run_until_idle()
    a_sms = next(d for d in hub.client.get("/v1/events/a-1", headers=acme).json()["decisions"]
                 if d["channel"] == "sms")
    d_sms = next(d for d in hub.event_view("d-1")["decisions"] if d["channel"] == "sms")
    assert a_sms["outcome"] == "skipped" and d_sms["outcome"] == "sent"
    assert len(fake_twilio.messages) == 1
