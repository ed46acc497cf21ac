"""Outgoing webhooks (issue 15 item 4): endpoints, Standard Webhooks signatures, at-least-once
delivery with backoff, order per notification, leases, delivery log, replay, disabling."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from hub.alerts import OpsAlerts
from hub.api.app import create_app
from hub.db import utcnow
from hub.keys import Scope, create_key
from hub.models import Event, Notification, WebhookDelivery, WebhookEndpoint
from hub.receipts import apply_status
from hub.runtime import HubRuntime
from hub.webhook_sender import WebhookSender
from tests.feedback.receiver import Receiver
from tests.helpers import event, read_outbox

RATE = re.compile(r"^(\d+): http://testserver(/f/\S+)$", re.M)


class FakeClock:
    """Time travel for the sender's schedule (signatures still carry the real time)."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=30)  # messages queued during the test are due

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingAlerts(OpsAlerts):
    """Ops alerts that are kept for the test instead of being sent."""

    def __init__(self) -> None:
        super().__init__(None)
        self.sent: list[tuple[str, str]] = []

    def notify(self, title: str, body: str) -> None:
        self.sent.append((title, body))


def _register(client: TestClient, url: str, types: list[str] | None = None) -> dict[str, Any]:
    reply = client.post("/v1/webhook-endpoints",
                        json={"url": url, **({"event_types": types} if types else {})})
    assert reply.status_code == 201, reply.text
    return reply.json()


def _post(client: TestClient, drain: Callable[[], None], event_id: str, type_: str,
          customer: str) -> None:
    body = event(event_id, type_, customer={"id": customer, "email": f"{customer}@example.pl",
                                            "locale": "en"})
    assert client.post("/v1/events", json=body).status_code == 202
    drain()


def _receipt(runtime: HubRuntime, event_id: str, status: str) -> None:
    """A provider receipt taking effect (what the SendGrid/Twilio webhook handlers call)."""
    with runtime.db.transaction() as session:
        row = session.scalar(select(Notification).join(Event, Event.id == Notification.event_pk)
                             .where(Event.event_id == event_id))
        assert apply_status(row, status, receipt_id=f"test:{event_id}:{status}", source="test")


def _verified(secret: str, received: list[Any]) -> list[dict[str, Any]]:
    """Every request's payload; raises if any signature does not verify."""
    hook = Webhook(secret)
    return [hook.verify(r.body, r.headers) for r in received]


def test_receiver_down_for_ten_minutes_gets_every_change_signed_and_in_order(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    clock = FakeClock()
    recover_at = clock.now + timedelta(minutes=10)
    with Receiver(lambda: clock() < recover_at) as receiver:
        endpoint = _register(client, receiver.url)
        assert endpoint["secret"].startswith("whsec_")
        _post(client, drain, "w-1", "parcel.delivered", "c-1")
        _post(client, drain, "w-2", "parcel.feedback_request", "c-2")
        _post(client, drain, "w-3", "parcel.out_for_delivery", "c-3")
        for event_id, status in (("w-1", "delivered"), ("w-1", "clicked"),
                                 ("w-1", "unsubscribed"), ("w-2", "delivered"),
                                 ("w-3", "bounced")):
            _receipt(runtime, event_id, status)
        text = next(m["parts"]["text"] for m in read_outbox(
            Path(runtime.settings.console_outbox_path)) if "/f/" in m["parts"].get("text", ""))
        assert client.get(dict(RATE.findall(text))["9"]).status_code == 200
        alerts = RecordingAlerts()
        sender = WebhookSender(runtime.db, runtime.settings, alerts=alerts, clock=clock)
        for _ in range(400):  # bounded: 400 x 15 s of schedule time
            sender.run_once()
            with runtime.db.sessions() as session:
                if not session.scalar(select(WebhookDelivery.id).where(
                        WebhookDelivery.state == "pending").limit(1)):
                    break
            clock.advance(15)
        payloads = _verified(endpoint["secret"], receiver.received)
    expected = {"w-1": ["notification.sent", "notification.delivered", "notification.clicked",
                        "notification.unsubscribed"],
                "w-2": ["notification.sent", "notification.delivered", "feedback.received"],
                "w-3": ["notification.sent", "notification.failed"]}
    assert any(r.answered == 500 for r in receiver.received)  # it really was down
    for event_id, types in expected.items():
        seen = [(p["type"], r.answered) for p, r in zip(payloads, receiver.received, strict=True)
                if p["data"]["event_id"] == event_id]
        order = [types.index(t) for t, _ in seen]
        assert order == sorted(order), (event_id, seen)  # never a later change first
        assert [t for t, code in seen if code == 204] == types, (event_id, seen)
    feedback = next(p for p in payloads if p["type"] == "feedback.received")
    assert feedback["data"]["score"] == 9
    assert alerts.sent == []  # ten minutes of failures do not disable the endpoint
    assert client.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()["enabled"] is True


def test_failing_endpoint_is_disabled_with_an_ops_alert_and_can_be_enabled(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    clock = FakeClock()
    down = [True]
    with Receiver(lambda: down[0]) as receiver:
        endpoint = _register(client, receiver.url, ["notification.sent"])
        _post(client, drain, "d-1", "parcel.delivered", "c-1")
        alerts = RecordingAlerts()
        settings = runtime.settings.model_copy(update={"webhook_disable_after_failures": 3})
        sender = WebhookSender(runtime.db, settings, alerts=alerts, clock=clock)
        for _ in range(20):
            sender.run_once()
            clock.advance(120)
        assert len(receiver.received) == 3 and len(alerts.sent) == 1
        assert endpoint["id"] in alerts.sent[0][1]
        shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
        assert shown["enabled"] is False and "3 consecutive" in shown["disabled_reason"]
        down[0] = False
        assert client.post(f"/v1/webhook-endpoints/{endpoint['id']}/enable").status_code == 200
        sender.run_once()
    assert [r.answered for r in receiver.received] == [500, 500, 500, 204]


def test_give_up_after_the_retry_window(client: TestClient, runtime: HubRuntime,
                                        drain: Callable[[], None]) -> None:
    clock = FakeClock()
    with Receiver(lambda: True) as receiver:
        _register(client, receiver.url)
        _post(client, drain, "g-1", "parcel.delivered", "c-1")
        sender = WebhookSender(runtime.db, runtime.settings, alerts=RecordingAlerts(),
                               clock=clock)
        for _ in range(100):
            sender.run_once()
            clock.advance(3600)
    with runtime.db.sessions() as session:
        (row,) = session.scalars(select(WebhookDelivery)).all()
    assert row.state == "failed" and 10 < row.attempts < 40  # backoff, not a hammering
    assert len(receiver.received) == row.attempts


def test_delivery_log_and_manual_replay_with_the_same_webhook_id(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    clock = FakeClock()
    with Receiver(lambda: False) as receiver:
        endpoint = _register(client, receiver.url)
        _post(client, drain, "r-1", "parcel.delivered", "c-1")
        sender = WebhookSender(runtime.db, runtime.settings, clock=clock)
        sender.run_once()
        log = client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()
        (delivery,) = log["deliveries"]
        assert (delivery["state"], delivery["attempts"], delivery["last_status_code"]) == (
            "succeeded", 1, 204)
        assert delivery["log"][0]["ok"] is True
        url = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/replay"
        assert client.post(url).status_code == 202
        clock.advance(60)  # the replay is due at once on the real clock
        sender.run_once()
        assert client.post(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/999/replay"
                           ).status_code == 404
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 2 and ids[0] == ids[1] == delivery["msg_id"]


def test_two_senders_never_send_a_notifications_messages_out_of_order(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    clock = FakeClock()
    with Receiver(lambda: False) as receiver:
        _register(client, receiver.url)
        _post(client, drain, "o-1", "parcel.delivered", "c-1")
        _receipt(runtime, "o-1", "delivered")
        a = WebhookSender(runtime.db, runtime.settings, clock=clock)
        b = WebhookSender(runtime.db, runtime.settings, clock=clock)
        (head,) = a.claim(10)  # only the first: the second waits for it
        assert b.claim(10) == []  # leased by a, and its successor is blocked
        a.settle(head.id, a.attempt(head))
        (second,) = b.claim(10)
        assert json.loads(second.body)["type"] == "notification.delivered"
        b.settle(second.id, b.attempt(second))
    assert [json.loads(r.body)["type"] for r in receiver.received] == [
        "notification.sent", "notification.delivered"]


def test_status_changes_are_queued_in_their_own_transaction_once(
        client: TestClient, runtime: HubRuntime, drain: Callable[[], None]) -> None:
    endpoint = _register(client, "http://127.0.0.1:9/none", ["notification.delivered"])
    _post(client, drain, "t-1", "parcel.delivered", "c-1")
    with pytest.raises(RuntimeError), runtime.db.transaction() as session:
        row = session.scalar(select(Notification))
        apply_status(row, "delivered", receipt_id="rolled-back", source="test")
        raise RuntimeError("the receipt's transaction fails")
    with runtime.db.sessions() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []  # sent: filtered out
    _receipt(runtime, "t-1", "delivered")
    with runtime.db.transaction() as session:  # a duplicate receipt of another provider
        apply_status(session.scalar(select(Notification)), "delivered", source="other")
    with runtime.db.sessions() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
    assert [r.event_type for r in rows] == ["notification.delivered"]
    assert client.delete(f"/v1/webhook-endpoints/{endpoint['id']}").status_code == 204
    with runtime.db.sessions() as session:
        assert session.scalars(select(WebhookDelivery.state)).all() == ["cancelled"]


@pytest.mark.parametrize("url", [
    "http://example.com/hook", "https://10.0.0.5/hook", "https://192.168.1.1/hook",
    "https://[::1]/hook", "https://169.254.169.254/latest", "ftp://example.com/x",
    "https://user:pw@203.0.113.9/x", "not a url", "https://100.64.0.1/x",
    "https://[::ffff:127.0.0.1]/x", "https://0.0.0.0/x",
])
def test_endpoint_urls_are_checked_against_ssrf(client: TestClient, runtime: HubRuntime,
                                                url: str) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhooks_allow_loopback": False})
    reply = client.post("/v1/webhook-endpoints", json={"url": url})
    assert reply.status_code == 422 and reply.headers["content-type"].startswith(
        "application/problem+json")


def test_loopback_needs_the_setting(client: TestClient, runtime: HubRuntime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhooks_allow_loopback": False})
    assert client.post("/v1/webhook-endpoints",
                       json={"url": "http://127.0.0.1:8080/x"}).status_code == 422


def test_endpoints_belong_to_their_producer_and_need_the_scope(
        client: TestClient, runtime: HubRuntime) -> None:
    created = _register(client, "http://127.0.0.1:9/x", ["notification.failed"])
    listed = client.get("/v1/webhook-endpoints").json()
    assert [e["id"] for e in listed["endpoints"]] == [created["id"]]
    assert "secret" not in listed["endpoints"][0]  # shown once, at creation
    other = TestClient(create_app(runtime))
    other.headers["Authorization"] = (
        f"Bearer {create_key(runtime.db, 'other', [Scope.WEBHOOKS_WRITE])}")
    assert other.get(f"/v1/webhook-endpoints/{created['id']}").status_code == 404
    assert other.get("/v1/webhook-endpoints").json()["endpoints"] == []
    events_only = TestClient(create_app(runtime))
    events_only.headers["Authorization"] = (
        f"Bearer {create_key(runtime.db, 'x', [Scope.EVENTS_WRITE])}")
    assert events_only.get("/v1/webhook-endpoints").status_code == 403
    bad = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/x",
                                                      "event_types": ["nope"]})
    assert bad.status_code == 422
    with runtime.db.sessions() as session:
        assert session.scalar(select(WebhookEndpoint.secret)) == created["secret"]


def test_the_running_hub_sends_webhooks_from_its_worker(runtime: HubRuntime) -> None:
    """Wiring: `hub serve`'s embedded worker also runs the webhook sender (real clock)."""
    with Receiver(lambda: False) as receiver, \
            TestClient(create_app(runtime, embedded_worker=True)) as http:
        http.headers["Authorization"] = f"Bearer {create_key(runtime.db, 'p', [Scope.ADMIN])}"
        secret = _register(http, receiver.url)["secret"]
        body = event("live-1", "parcel.delivered",
                     customer={"id": "c-1", "email": "c-1@example.pl"})
        assert http.post("/v1/events", json=body).status_code == 202
        deadline = utcnow() + timedelta(seconds=20)
        while not receiver.received and utcnow() < deadline:
            time.sleep(0.05)
        (payload,) = _verified(secret, receiver.received)
    assert (payload["type"], payload["data"]["event_id"]) == ("notification.sent", "live-1")
