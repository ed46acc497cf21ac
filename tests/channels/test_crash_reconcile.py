"""A worker dies between the provider call and recording its answer: no second message."""

from __future__ import annotations

import pytest

from channels import OutgoingMessage, SendResult
from hub.delivery import SENDING, Envelope, deliver
from tests.channels.conftest import sendgrid_settings, twilio_settings
from tests.helpers import event


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing catches it)."""


class CrashAfterSend:
    """The real adapter, but the process 'dies' right after the provider accepted."""

    def __init__(self, adapter):
        self.adapter, self.name = adapter, adapter.name

    def send(self, message: OutgoingMessage) -> SendResult:
        self.adapter.send(message)
        raise Crash

    def reconcile(self, key: str) -> SendResult | None:
        return self.adapter.reconcile(key)


def _envelope(address: str, channel: str, event_pk: int) -> Envelope:
    return Envelope(
        event_pk,
        "c-1001",
        "PL0001234567",
        "parcel.delivered",
        channel,
        address,
        "pl",
        {"subject": "s", "text": "t", "body": "b"},
        {},
    )


def _crash_then_retry(hub, channel, address):
    hub.post(event("evt-1"))  # a real event row for the send record's foreign key
    adapter = hub.runtime.pipeline.stages.transports[channel]
    env = _envelope(address, channel, 1)
    with pytest.raises(Crash):
        deliver(hub.runtime.db, CrashAfterSend(adapter), env)
    with hub.runtime.db.sessions() as session:
        from hub.models import Notification

        assert session.query(Notification).one().status == SENDING
    return deliver(hub.runtime.db, adapter, env)  # the retry after the crash


def test_sendgrid_crash_is_reconciled_through_the_activity_api(make_hub, fake_sendgrid):
    hub = make_hub(**sendgrid_settings(fake_sendgrid))
    result = _crash_then_retry(hub, "email", "anna@example.pl")
    assert result.ok and result.provider_message_id == fake_sendgrid.mails[0]["id"]
    assert sum(fake_sendgrid.by_key.values()) == 1
    (note,) = hub.event_view("evt-1")["notifications"]
    assert note["status"] == "sent" and note["history"][-1]["detail"] == "reconciled after a crash"


def test_twilio_crash_is_not_resent_and_the_status_callback_settles_it(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    result = _crash_then_retry(hub, "sms", "+48512345678")
    assert not result.ok and len(fake_twilio.messages) == 1  # unconfirmed, never twice
    (message,) = fake_twilio.messages
    url, params, sig = fake_twilio.status_webhook(message, "delivered")
    reply = hub.client.post(url.removeprefix("https://hub.example"), data=params, headers=sig)
    assert reply.status_code == 204
    (note,) = hub.event_view("evt-1")["notifications"]
    assert note["status"] == "delivered" and note["provider_message_id"] == message["sid"]
