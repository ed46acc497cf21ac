"""The carrier's app as channels: the devices API, app push fanned out to every device, the
inbox copy, dead tokens, consent and quiet hours."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels import OutgoingMessage, SendResult
from hub.api.app import create_app
from hub.db import utcnow
from hub.events import EventIn
from hub.inbox_channel import InboxAdapter
from hub.intake import accept
from hub.keys import Scope, create_key
from hub.models import Decision, Device, InboxItem, OutboxJob
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import api_key, event, make_runtime

ANDROID = "fcm-token-android-1:APA91b" + "x" * 40
IOS = "a1" * 32
ANNA = {"name": "Anna Kowalska", "phone": "+48512345678", "locale": "pl"}


class Recording:
    """A provider whose answers are scripted per token; records every message."""

    def __init__(self, name: str, answers: dict[str, SendResult] | None = None) -> None:
        self.name, self.answers, self.sent = name, answers or {}, []
        self.authoritative_reconcile = False

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        return self.answers.get(message.address, SendResult.sent(f"{self.name}-{len(self.sent)}"))

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        return None


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[HubRuntime]:
    rt = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    yield rt
    rt.db.dispose()


@pytest.fixture
def client(runtime: HubRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        c.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        yield c


def _app_customer(client: TestClient, customer: str = "c-1001") -> None:
    assert client.put(f"/v1/customers/{customer}", json=ANNA).status_code in (200, 201)
    for platform, token in (("android", ANDROID), ("ios", IOS)):
        reply = client.post(f"/v1/customers/{customer}/devices", json={
            "platform": platform, "token": token, "app_id": "pl.example.parcels",
            "app_version": "5.2.0", "locale": "pl"})
        assert reply.status_code == 201, reply.text


def _providers(runtime: HubRuntime, **answers: dict[str, SendResult]) -> dict[str, Recording]:
    made = {name: Recording(name, answers.get(name)) for name in ("fcm", "apns", "sms")}
    stages = runtime.pipeline.stages
    runtime.pipeline.stages = replace(stages, transports={**stages.transports, **made})
    return made


def _post(runtime: HubRuntime, event_id: str, type_: str, **over: Any) -> None:
    accept(runtime.db, "p", [EventIn.model_validate(event(event_id, type_, **over))])


def _drain(runtime: HubRuntime, rounds: int = 50) -> None:
    worker = Worker(runtime.db, runtime.pipeline, runtime.settings)
    for _ in range(rounds):
        worker.run_once()
        with runtime.db.sessions() as s:
            soon = utcnow() + timedelta(seconds=1)  # retries back off by milliseconds here
            if not s.scalars(select(OutboxJob).where(OutboxJob.state == "pending",
                                                     OutboxJob.not_before <= soon)).first():
                return
        time.sleep(0.01)


def _decisions(runtime: HubRuntime, event_pk: int) -> dict[str, tuple[str, str]]:
    with runtime.db.sessions() as s:
        return {d.channel: (d.outcome, d.reason) for d in s.scalars(
            select(Decision).where(Decision.event_pk == event_pk).order_by(Decision.id))}


def _inbox(runtime: HubRuntime) -> list[InboxItem]:
    with runtime.db.sessions() as s:
        return list(s.scalars(select(InboxItem).order_by(InboxItem.id)))


# -- the devices API: hostile input first ---------------------------------------------------


def test_devices_api_refuses_hostile_input(client: TestClient, runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    url = "/v1/customers/c-1/devices"
    base = {"platform": "ios", "token": IOS, "app_id": "pl.example.parcels"}
    bad_ios = client.post(url, json={**base, "token": "zz" * 32})
    assert bad_ios.status_code == 422 and bad_ios.headers["content-type"].startswith(
        "application/problem+json")
    assert bad_ios.json()["errors"][0]["path"] == "token" and "64 hexadecimal" in bad_ios.text
    too_long = client.post(url, json={**base, "platform": "android", "token": "t" * 513})
    assert too_long.status_code == 422 and "512" in too_long.json()["detail"]
    assert client.post(url, json={**base, "token": "x" * 5000}).status_code == 422
    assert client.post(url, json={**base, "platform": "android", "token": "a b"}
                       ).status_code == 422
    assert client.post(url, json={**base, "tenant": "other"}).status_code == 422  # unknown
    assert client.post(url, json={**base, "platform": "windows"}).status_code == 422
    assert client.post(url, json={**base, "locale": "xx"}).status_code == 422
    assert client.delete(f"{url}/{2**63}").status_code == 422
    with runtime.db.sessions() as s:
        assert s.scalars(select(Device)).first() is None  # nothing half-written

    other = create_key(runtime.db, "other-carrier", [Scope.CUSTOMERS_WRITE], tenant="acme")
    created = client.post(url, json=base).json()
    as_other = {"Authorization": f"Bearer {other}"}
    assert client.post(url, json=base, headers=as_other).status_code == 404
    assert client.get(url, headers=as_other).status_code == 404
    assert client.delete(f"{url}/{created['id']}", headers=as_other).status_code == 404
    reader = api_key(runtime, Scope.EVENTS_READ, producer="reader")
    assert client.post(url, json=base, headers={"Authorization": f"Bearer {reader}"}
                       ).status_code == 403


def test_devices_register_move_list_delete_export_erase(client: TestClient,
                                                        runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json=ANNA)
    client.put("/v1/customers/c-2", json=ANNA)
    first = client.post("/v1/customers/c-1/devices", json={
        "platform": "ios", "token": IOS.upper(), "app_id": "pl.example.parcels"})
    assert first.status_code == 201
    # the same install logs in as another customer: the token moves, no second row
    moved = client.post("/v1/customers/c-2/devices", json={
        "platform": "ios", "token": IOS, "app_id": "pl.example.parcels", "app_version": "5.3"})
    assert moved.status_code == 200 and moved.json()["id"] == first.json()["id"]
    assert client.get("/v1/customers/c-1/devices").json()["devices"] == []
    listed = client.get("/v1/customers/c-2/devices").json()["devices"]
    assert [d["app_version"] for d in listed] == ["5.3"]
    assert IOS not in str(listed) and listed[0]["token"].startswith(IOS[:6])  # masked
    android = client.post("/v1/customers/c-2/devices", json={
        "platform": "android", "token": ANDROID, "app_id": "pl.example.parcels"}).json()
    assert client.delete(f"/v1/customers/c-2/devices/{android['id']}").status_code == 204
    assert client.delete(f"/v1/customers/c-2/devices/{android['id']}").status_code == 404
    export = client.get("/v1/customers/c-2/export").json()
    assert [d["token"] for d in export["addresses"]["devices"]] == [IOS]  # full, for the owner
    assert client.delete("/v1/customers/c-2").status_code == 204
    with runtime.db.sessions() as s:
        assert s.scalars(select(Device)).all() == []


# -- app push and the inbox through the engine ------------------------------------------------


def test_journey_fans_out_per_device_collapses_per_parcel_and_fills_the_inbox(
        client: TestClient, runtime: HubRuntime) -> None:
    _app_customer(client)
    sent = _providers(runtime)
    deadline = (utcnow() + timedelta(days=3)).isoformat()
    parcel = event()["parcel"] | {"pickup_point": event()["parcel"]["pickup_point"]
                                  | {"deadline": deadline}}
    for number, type_ in enumerate(("parcel.in_transit", "parcel.out_for_delivery",
                                    "parcel.ready_for_pickup"), start=1):
        _post(runtime, f"e-{number}", type_, parcel=parcel)
        _drain(runtime)
    fcm, apns = sent["fcm"].sent, sent["apns"].sent
    assert [m.address for m in fcm] == [ANDROID] * 3 and [m.address for m in apns] == [IOS] * 3
    assert sent["sms"].sent == []  # the app carried everything
    meta = [m.metadata for m in fcm]
    assert {m["collapse_key"] for m in meta} == {"PL0001234567"}  # one per parcel
    assert [m["urgent"] for m in meta] == [False, True, False]  # pickup deadline 3 days off
    assert meta[1]["ttl_seconds"] == 8 * 3600
    assert 3 * 86400 - 120 < meta[2]["ttl_seconds"] <= 3 * 86400  # until the deadline
    assert meta[0]["platform"] == "android" and apns[0].metadata["platform"] == "ios"
    assert all(isinstance(v, str) for v in meta[0]["data"].values())
    assert fcm[1].channel == "app_push" and set(fcm[1].parts) >= {"title", "body", "url"}
    assert _decisions(runtime, 2)["app_push"][0] == "sent"
    assert _decisions(runtime, 2)["sms"] == ("skipped", "fallback_not_needed")
    items = _inbox(runtime)
    assert [i.event_type for i in items] == ["parcel.in_transit", "parcel.out_for_delivery",
                                            "parcel.ready_for_pickup"]
    assert items[2].parcel == "PL0001234567" and "\n\n" in items[2].body
    assert items[2].locale == "pl" and items[2].category == "transactional"


def test_dead_tokens_are_deactivated_and_sms_takes_over(client: TestClient,
                                                       runtime: HubRuntime) -> None:
    _app_customer(client)
    dead = SendResult.permanent("UNREGISTERED", deactivate=True)
    sent = _providers(runtime, fcm={ANDROID: dead},
                      apns={IOS: SendResult.permanent("410 Unregistered", deactivate=True)})
    _post(runtime, "e-1", "parcel.out_for_delivery")
    _drain(runtime)
    first = _decisions(runtime, 1)
    assert first["app_push"] == ("failed", "provider_permanent")
    assert first["sms"] == ("sent", "sent") and first["inbox"] == ("sent", "sent")
    with runtime.db.sessions() as s:
        devices = s.scalars(select(Device)).all()
    assert sorted((d.active, d.deactivated_reason or "") for d in devices) == [
        (False, "410 Unregistered"), (False, "UNREGISTERED")]
    _post(runtime, "e-2", "parcel.delivered")
    _drain(runtime)
    second = _decisions(runtime, 2)
    assert second["app_push"] == ("skipped", "no_address")
    assert second["sms"] == ("sent", "sent")
    assert second["inbox"] == ("sent", "sent")  # the app is still installed: inbox readable
    assert len(sent["fcm"].sent) == 1 and len(sent["sms"].sent) == 2


def test_one_live_device_is_enough(client: TestClient, runtime: HubRuntime) -> None:
    _app_customer(client)
    sent = _providers(runtime, fcm={ANDROID: SendResult.permanent("UNREGISTERED",
                                                                  deactivate=True)})
    _post(runtime, "e-1", "parcel.out_for_delivery")
    _drain(runtime)
    outcome, reason = _decisions(runtime, 1)["app_push"]
    assert (outcome, reason) == ("sent", "sent") and sent["sms"].sent == []


def test_marketing_through_app_push_needs_its_consent(client: TestClient,
                                                      runtime: HubRuntime) -> None:
    _app_customer(client)
    sent = _providers(runtime)
    campaign = {"title": "Black Friday", "body": "-30%", "url": "https://example.pl/bf"}
    _post(runtime, "m-1", "marketing.campaign", data=campaign, parcel=None)
    _drain(runtime)
    assert _decisions(runtime, 1)["app_push"] == ("skipped", "no_consent")
    assert _decisions(runtime, 1)["inbox"] == ("skipped", "no_consent")
    assert sent["fcm"].sent == [] and _inbox(runtime) == []
    for channel in ("app_push", "inbox"):
        granted = client.post("/v1/customers/c-1001/consents", json={
            "purpose": "marketing", "channel": channel, "action": "granted",
            "source": "preference_center"})
        assert granted.status_code == 201, granted.text
    _post(runtime, "m-2", "marketing.campaign", data=campaign, parcel=None)
    _drain(runtime)
    assert _decisions(runtime, 2)["app_push"][0] == "sent"
    assert _decisions(runtime, 2)["inbox"] == ("sent", "sent")
    assert sent["fcm"].sent[0].metadata["collapse_key"] == "marketing.campaign"


def test_inbox_item_is_written_once_when_the_job_is_retried(client: TestClient,
                                                           runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1001", json=ANNA)
    client.post("/v1/customers/c-1001/devices", json={
        "platform": "ios", "token": IOS, "app_id": "pl.example.parcels"})
    flaky = [SendResult.transient("503"), SendResult.transient("503")]
    sent = _providers(runtime)
    sent["apns"].send = lambda m: (sent["apns"].sent.append(m),  # type: ignore[method-assign]
                                   flaky.pop(0) if flaky else SendResult.sent("apns-ok"))[1]
    _post(runtime, "e-1", "parcel.out_for_delivery")
    _drain(runtime)
    assert len(sent["apns"].sent) == 3
    assert _decisions(runtime, 1)["app_push"] == ("sent", "sent")
    assert len(_inbox(runtime)) == 1


def test_inbox_adapter_inserts_once_per_key(database_url: str, tmp_path: Path) -> None:
    runtime = make_runtime(database_url, tmp_path)
    with TestClient(create_app(runtime)) as c:
        c.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        c.put("/v1/customers/c-1", json=ANNA)
    inbox = InboxAdapter(runtime.db)
    message = OutgoingMessage("7:inbox:abc", "inbox", "c-1", {
        "title": "Paczka", "body": "Treść", "url": "https://track.example.pl/1"}, "pl", {
        "tenant": "default", "event_type": "parcel.delivered", "category": "transactional",
        "tracking_number": "PL1"})
    assert inbox.reconcile("7:inbox:abc") is None
    first, again = inbox.send(message), inbox.send(message)
    assert first.ok and first.provider_message_id == again.provider_message_id
    assert inbox.reconcile("7:inbox:abc") == first
    assert len(_inbox(runtime)) == 1
    runtime.db.dispose()


def test_quiet_hours_hold_app_push_but_not_urgent_ones_nor_the_inbox(
        client: TestClient, runtime: HubRuntime, tmp_path: Path) -> None:
    quiet = make_runtime(runtime.db.url, tmp_path, throttle_backend="memory")
    _app_customer(client)
    here = datetime.now(ZoneInfo("Europe/Warsaw"))
    window = {"start": (here - timedelta(hours=1)).strftime("%H:%M"),
              "end": (here + timedelta(hours=2)).strftime("%H:%M")}
    assert client.put("/v1/customers/c-1001/preferences",
                      json={"quiet_hours": window}).status_code == 200
    sent = _providers(quiet)
    _post(quiet, "e-1", "parcel.in_transit")
    _drain(quiet, rounds=5)
    _post(quiet, "e-2", "parcel.out_for_delivery")
    _drain(quiet, rounds=5)
    calm, urgent = _decisions(quiet, 1), _decisions(quiet, 2)
    assert calm["app_push"] == ("deferred", "quiet_hours")
    assert calm["sms"] == ("skipped", "waiting_for_preferred")
    assert calm["inbox"] == ("sent", "sent")  # silent: written at once
    assert urgent["app_push"] == ("sent", "sent")
    assert [m.metadata["event_type"] for m in sent["fcm"].sent] == ["parcel.out_for_delivery"]
    assert [i.event_type for i in _inbox(quiet)] == ["parcel.in_transit",
                                                     "parcel.out_for_delivery"]
    quiet.db.dispose()


def test_retry_calls_only_the_devices_still_owed(client: TestClient, runtime: HubRuntime
                                                 ) -> None:
    _app_customer(client)
    sent = _providers(runtime, fcm={ANDROID: SendResult.permanent("INVALID_ARGUMENT")})
    busy = [SendResult.transient("503")]
    apns = sent["apns"]
    apns.send = lambda m: (apns.sent.append(m),  # type: ignore[method-assign]
                           busy.pop(0) if busy else SendResult.sent("apns-ok"))[1]
    _post(runtime, "e-1", "parcel.out_for_delivery")
    _drain(runtime)
    # run 1: android refused for good, iPhone busy -> retried; run 2: only the iPhone is called
    assert len(sent["fcm"].sent) == 1 and len(apns.sent) == 2
    outcome, reason = _decisions(runtime, 1)["app_push"]
    assert (outcome, reason) == ("sent", "sent") and sent["sms"].sent == []
    with runtime.db.sessions() as s:
        detail = s.scalars(select(Decision.detail).where(Decision.channel == "app_push")).one()
    assert detail.startswith("1 of 2 devices")
