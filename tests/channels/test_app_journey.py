"""A parcel journey through the real FCM and APNs adapters against their loopback fakes:
the wire requests collapse per parcel and carry priority by urgency; a token the provider
calls dead is deactivated and the next notice falls back to SMS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.api.app import create_app
from hub.db import utcnow
from hub.models import Decision, Device, Event, OutboxJob
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.fakes.apns import FakeApns
from tests.fakes.fcm import FakeFcm
from tests.helpers import api_key, event, make_runtime

ANDROID = "dQw4w9WgXcQ:APA91bF" + "k" * 120
IOS_FIREBASE = "cX9z1:APA91bE" + "q" * 120  # an iOS app on Firebase: an FCM token
IOS = "b2" * 32
APP = "pl.parcelhub.app"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[tuple[HubRuntime, TestClient, FakeFcm, FakeApns]]:
    with FakeFcm() as fcm, FakeApns(tmp_path, topics=(APP,)) as apns:
        monkeypatch.setenv("SSL_CERT_FILE", str(apns.cert))  # trust the fake's certificate
        account = tmp_path / "service-account.json"
        account.write_text(json.dumps(fcm.service_account_info()))
        key = tmp_path / "AuthKey.p8"
        key.write_bytes(apns.p8())
        rt = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path,
                          fcm_service_account_file=str(account), fcm_api_base_url=fcm.url,
                          apns_key_file=str(key), apns_key_id=apns.key_id,
                          apns_team_id=apns.team_id, apns_base_url=apns.url)
        with TestClient(create_app(rt)) as client:
            client.headers["Authorization"] = f"Bearer {api_key(rt)}"
            yield rt, client, fcm, apns
        rt.db.dispose()


def _post(client: TestClient, rt: HubRuntime, event_id: str, type_: str, deadline_days: int
          ) -> int:
    body = event(event_id, type_, customer={"id": "c-7", "phone": "+48512345678",
                                            "locale": "pl"})
    body["parcel"]["pickup_point"]["deadline"] = (
        utcnow() + timedelta(days=deadline_days)).isoformat()
    assert client.post("/v1/events", json=body).status_code == 202
    worker = Worker(rt.db, rt.pipeline, rt.settings)
    for _ in range(100):
        worker.run_once()
        with rt.db.sessions() as s:
            if s.scalar(select(OutboxJob.state).join(Event, Event.id == OutboxJob.event_pk)
                        .where(Event.event_id == event_id)) == "done":
                break
        time.sleep(0.02)
    with rt.db.sessions() as s:
        pk = s.scalar(select(Event.id).where(Event.event_id == event_id))
        assert pk is not None
        return pk


def _decisions(rt: HubRuntime, event_pk: int) -> dict[str, tuple[str, str]]:
    with rt.db.sessions() as s:
        return {d.channel: (d.outcome, d.reason) for d in s.scalars(
            select(Decision).where(Decision.event_pk == event_pk))}


def test_parcel_journey_on_the_wire_then_dead_tokens_fall_back_to_sms(hub: tuple) -> None:
    rt, client, fcm, apns = hub
    assert client.put("/v1/customers/c-7", json={"phone": "+48512345678",
                                                 "locale": "pl"}).status_code in (200, 201)
    for platform, token in (("android", ANDROID), ("ios", IOS), ("ios", IOS_FIREBASE)):
        assert client.post("/v1/customers/c-7/devices", json={
            "platform": platform, "token": token, "app_id": APP}).status_code == 201
    calm = _post(client, rt, "e-1", "parcel.ready_for_pickup", deadline_days=3)
    urgent = _post(client, rt, "e-2", "parcel.out_for_delivery", deadline_days=3)
    assert _decisions(rt, calm)["app_push"][0] == "sent"
    assert _decisions(rt, urgent)["sms"] == ("skipped", "fallback_not_needed")

    android = [m["body"]["message"] for m in fcm.messages if m["body"]["message"]["token"] == ANDROID]
    firebase_ios = [m["body"]["message"] for m in fcm.messages
                    if m["body"]["message"]["token"] == IOS_FIREBASE]
    assert [m["android"]["priority"] for m in android] == ["NORMAL", "HIGH"]
    assert {m["android"]["collapse_key"] for m in android} == {"PL0001234567"}  # per parcel
    assert {m["android"]["notification"]["tag"] for m in android} == {"PL0001234567"}
    assert all(m["android"]["restricted_package_name"] == APP for m in android)
    assert [m["apns"]["headers"]["apns-priority"] for m in firebase_ios] == ["5", "10"]
    assert "android" not in firebase_ios[0]
    assert [p.headers["apns-priority"] for p in apns.pushed] == ["5", "10"]
    assert {p.headers["apns-collapse-id"] for p in apns.pushed} == {"PL0001234567"}
    assert {p.headers["apns-topic"] for p in apns.pushed} == {APP}
    assert all(p.headers["apns-push-type"] == "alert" for p in apns.pushed)
    assert apns.pushed[0].payload["aps"]["alert"]["title"]
    assert android[0]["notification"]["title"] == apns.pushed[0].payload["aps"]["alert"]["title"]

    fcm.unregistered |= {ANDROID, IOS_FIREBASE}  # the app was uninstalled everywhere
    apns.unregistered.add(IOS)
    gone = _post(client, rt, "e-3", "parcel.delivery_attempt_failed", deadline_days=3)
    assert _decisions(rt, gone)["app_push"] == ("failed", "provider_permanent")
    assert _decisions(rt, gone)["sms"] == ("sent", "sent")  # the fallback, same event
    with rt.db.sessions() as s:
        assert {d.active for d in s.scalars(select(Device))} == {False}
    after = _post(client, rt, "e-4", "parcel.delivered", deadline_days=3)
    assert _decisions(rt, after)["app_push"] == ("skipped", "no_address")
    assert _decisions(rt, after)["sms"] == ("sent", "sent")
    assert len(apns.pushed) == 2  # nothing more went to the dead token
