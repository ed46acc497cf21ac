"""Signed provider webhooks: genuine ones move the status; forged or replayed change nothing."""

from __future__ import annotations

import time

from sqlalchemy import select

from hub.models import ChannelSuppression, ConsentRecord, InboundKeyword
from tests.channels.conftest import sendgrid_settings, twilio_settings
from tests.fakes.sendgrid import FakeSendGrid
from tests.helpers import event

INBOUND_URL = "https://hub.example/v1/webhooks/twilio/inbound"


def _post_twilio(hub, signed, headers=None):
    url, params, sig = signed
    path = url.removeprefix("https://hub.example")
    return hub.client.post(path, data=params, headers=sig if headers is None else headers)


def _statuses(hub, event_id):
    (note,) = hub.event_view(event_id)["notifications"]
    return note["status"], [h["status"] for h in note["history"]]


def test_twilio_status_callbacks(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    hub.post(event("evt-1"))
    hub.run_until_idle()
    (message,) = fake_twilio.messages
    assert _post_twilio(hub, fake_twilio.status_webhook(message, "sent")).status_code == 204
    assert _post_twilio(hub, fake_twilio.status_webhook(message, "delivered")).status_code == 204
    # a late, re-delivered "sent" is history at most, never a step back
    assert _post_twilio(hub, fake_twilio.status_webhook(message, "sent")).status_code == 204
    status, history = _statuses(hub, "evt-1")
    assert status == "delivered" and history == ["sending", "sent", "sent", "delivered"]
    listed = hub.client.get("/v1/notifications?status=delivered", headers=hub.auth).json()
    assert [n["provider_message_id"] for n in listed["items"]] == [message["sid"]]


def test_forged_and_unsigned_twilio_webhooks_change_nothing(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    hub.post(event("evt-1"))
    hub.run_until_idle()
    (message,) = fake_twilio.messages
    url, params, _ = fake_twilio.status_webhook(message, "delivered")
    forged = fake_twilio.signed(url, params, token="not-the-token")
    assert _post_twilio(hub, forged).status_code == 403
    tampered = (url, {**params, "MessageStatus": "failed"}, forged[2])
    genuine = fake_twilio.status_webhook(message, "delivered")
    assert _post_twilio(hub, (url, {**params, "MessageStatus": "failed"}, genuine[2])).status_code == 403
    assert _post_twilio(hub, tampered).status_code == 403
    reply = _post_twilio(hub, genuine, headers={})
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"
    assert _statuses(hub, "evt-1") == ("sent", ["sending", "sent"])


def test_undelivered_status_marks_failed(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    hub.post(event("evt-1"))
    hub.run_until_idle()
    (message,) = fake_twilio.messages
    _post_twilio(hub, fake_twilio.status_webhook(message, "undelivered", error_code="30006"))
    (note,) = hub.event_view("evt-1")["notifications"]
    assert note["status"] == "failed" and note["error"] == "twilio error 30006"


def test_inbound_stop_then_start(make_hub, fake_twilio, fake_sendgrid):
    hub = make_hub(**twilio_settings(fake_twilio), **sendgrid_settings(fake_sendgrid))
    stop = fake_twilio.inbound_webhook(INBOUND_URL, "+48512345678", "Stop")
    reply = _post_twilio(hub, stop)
    assert reply.status_code == 200 and "<Response>" in reply.text
    assert _post_twilio(hub, stop).status_code == 200  # redelivered: recorded once
    with hub.runtime.db.sessions() as session:
        (kw,) = session.scalars(select(InboundKeyword)).all()
        assert (kw.keyword, kw.action, kw.address) == ("STOP", "withdraw", "+48512345678")
    hub.post(event("evt-after-stop"))
    hub.run_until_idle()
    decisions = {d["channel"]: d for d in hub.event_view("evt-after-stop")["decisions"]}
    assert decisions["sms"]["outcome"] == "skipped" and decisions["email"]["outcome"] == "sent"
    assert not fake_twilio.messages

    _post_twilio(hub, fake_twilio.inbound_webhook(INBOUND_URL, "+48512345678", "START"))
    hub.post(event("evt-after-start", type_="parcel.out_for_delivery"))
    hub.run_until_idle()
    assert len(fake_twilio.messages) == 1
    with hub.runtime.db.sessions() as session:
        (sup,) = session.scalars(select(ChannelSuppression)).all()
        assert sup.reason == "recipient_opt_out" and sup.lifted_at is not None


def test_inbound_stop_writes_the_consent_ledger_and_start_restores_sms(make_hub, fake_twilio, fake_sendgrid):
    hub = make_hub(**twilio_settings(fake_twilio), **sendgrid_settings(fake_sendgrid))
    hub.post(event("evt-0"))
    hub.run_until_idle()
    _post_twilio(hub, fake_twilio.inbound_webhook(INBOUND_URL, "+48512345678", "STOP"))
    with hub.runtime.db.sessions() as session:
        rows = session.scalars(select(ConsentRecord)).all()
        assert {(r.purpose, r.channel, r.action, r.source) for r in rows} == {
            ("marketing", "sms", "withdrawn", "sms_stop"),
            ("loyalty", "sms", "withdrawn", "sms_stop"),
        }
    hub.post(event("evt-1", type_="parcel.in_transit"))
    hub.run_until_idle()
    sms = next(d for d in hub.event_view("evt-1")["decisions"] if d["channel"] == "sms")
    assert sms["outcome"] == "skipped"
    _post_twilio(hub, fake_twilio.inbound_webhook(INBOUND_URL, "+48512345678", "start"))
    hub.post(event("evt-2", type_="parcel.out_for_delivery"))
    hub.run_until_idle()
    first = hub.event_view("evt-2")["decisions"][2]  # after inbox, app_push (no app)
    assert (first["channel"], first["outcome"]) == ("sms", "sent")
    assert len(fake_twilio.messages) == 2


def test_forged_inbound_stop_is_ignored(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    url, params, _ = fake_twilio.inbound_webhook(INBOUND_URL, "+48512345678", "STOP")
    assert _post_twilio(hub, fake_twilio.signed(url, params, token="x")).status_code == 403
    with hub.runtime.db.sessions() as session:
        assert session.scalars(select(InboundKeyword)).all() == []


def _sendgrid_hub(make_hub, fake_sendgrid):
    hub = make_hub(**sendgrid_settings(fake_sendgrid))
    body = event("evt-mail")
    del body["customer"]["phone"]
    hub.post(body)
    hub.run_until_idle()
    return hub, fake_sendgrid.mails[0]


def _post_sendgrid(hub, signed, headers=None):
    payload, sig = signed
    return hub.client.post(
        "/v1/webhooks/sendgrid/events", content=payload, headers=sig if headers is None else headers
    )


def test_sendgrid_events_update_status(make_hub, fake_sendgrid):
    hub, mail = _sendgrid_hub(make_hub, fake_sendgrid)
    events = [fake_sendgrid.event(mail, k) for k in ("processed", "delivered", "open", "click")]
    signed = fake_sendgrid.event_webhook(events)
    reply = _post_sendgrid(hub, signed)
    assert reply.status_code == 200 and reply.json() == {"received": 4, "applied": 4}
    assert _post_sendgrid(hub, signed).json()["applied"] == 0  # same events again: no-op
    status, history = _statuses(hub, "evt-mail")
    assert status == "clicked" and history == [
        "sending",
        "sent",
        "sent",
        "delivered",
        "opened",
        "clicked",
    ]


def test_sendgrid_bounce_suppresses_address(make_hub, fake_sendgrid):
    hub, mail = _sendgrid_hub(make_hub, fake_sendgrid)
    bounce = fake_sendgrid.event(mail, "bounce", type="bounce", reason="550 5.1.1 unknown user")
    assert _post_sendgrid(hub, fake_sendgrid.event_webhook([bounce])).status_code == 200
    (note,) = hub.event_view("evt-mail")["notifications"]
    assert note["status"] == "bounced" and "550" in note["error"]
    with hub.runtime.db.sessions() as session:
        (sup,) = session.scalars(select(ChannelSuppression)).all()
        assert (sup.channel, sup.reason) == ("email", "dead_address")


def test_sendgrid_forged_replayed_unsigned_are_rejected(make_hub, fake_sendgrid):
    hub, mail = _sendgrid_hub(make_hub, fake_sendgrid)
    events = [fake_sendgrid.event(mail, "delivered")]
    with FakeSendGrid() as impostor:  # signs with a key the hub does not trust
        assert _post_sendgrid(hub, impostor.event_webhook(events)).status_code == 403
    old = fake_sendgrid.event_webhook(events, timestamp=int(time.time()) - 3600)
    assert _post_sendgrid(hub, old).status_code == 403
    payload, headers = fake_sendgrid.event_webhook(events)
    tampered = payload.replace(b"delivered", b"bounce")
    assert _post_sendgrid(hub, (tampered, headers)).status_code == 403
    assert _post_sendgrid(hub, (payload, {"Content-Type": "application/json"})).status_code == 401
    assert _statuses(hub, "evt-mail") == ("sent", ["sending", "sent"])
