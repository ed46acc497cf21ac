"""Retries never revert newer data (issue 11, item 6); push endpoints never move silently and
saving preferences keeps operator throttle overrides (item 10). The erasure/send race
(item 5) is tested through the engine in tests/channels/test_erasure_in_flight.py."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hub.models import Customer, OutboxJob
from hub.runtime import HubRuntime
from tests.helpers import event

SUB = {"endpoint": "https://fcm.googleapis.com/fcm/send/one-device",
       "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVl",
                "auth": "tBHItJI5svbpez7K"}}


def test_a_retried_job_does_not_revert_a_newer_verified_phone(client: TestClient, drain,
                                                              runtime: HubRuntime) -> None:
    client.post("/v1/events", json=event("e-1", customer={"id": "c-1", "phone": "+48512345678",
                                                          "name": "Old Name"}))
    drain()
    client.put("/v1/customers/c-1", json={"name": "New Name", "phone": "+48601234567",
                                          "phone_verified": True})
    with runtime.db.transaction() as session:  # the job runs again (a retry, a redelivery)
        session.execute(update(OutboxJob).values(state="pending"))
    drain()
    profile = client.get("/v1/customers/c-1").json()
    assert (profile["phone"], profile["phone_verified"], profile["name"]) == (
        "+48601234567", True, "New Name")
    # an older event arriving late changes nothing either; a newer one does
    client.post("/v1/events", json=event("e-0", occurred_at="2026-11-20T10:00:00+01:00",
                                         customer={"id": "c-1", "phone": "+48512345678"}))
    drain()
    assert client.get("/v1/customers/c-1").json()["phone"] == "+48601234567"
    client.post("/v1/events", json=event("e-9", occurred_at="2099-01-01T10:00:00+01:00",
                                         customer={"id": "c-1", "phone": "+48502345678"}))
    drain()
    assert client.get("/v1/customers/c-1").json()["phone"] == "+48502345678"


def test_push_endpoint_of_another_customer_is_a_conflict(client: TestClient) -> None:
    client.put("/v1/customers/c-1", json={"name": "One"})
    client.put("/v1/customers/c-2", json={"name": "Two"})
    assert client.post("/v1/customers/c-1/push-subscriptions", json=SUB).status_code == 201
    taken = client.post("/v1/customers/c-2/push-subscriptions", json=SUB)
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"
    assert [s["endpoint"] for s in client.get("/v1/customers/c-1").json()[
        "push_subscriptions"]] == [SUB["endpoint"]]
    assert client.get("/v1/customers/c-2").json()["push_subscriptions"] == []
    # the owner may re-post it (keys rotated), and once removed it is free for another
    assert client.post("/v1/customers/c-1/push-subscriptions", json=SUB).status_code == 201
    client.request("DELETE", "/v1/customers/c-1/push-subscriptions",
                   json={"endpoint": SUB["endpoint"]})
    assert client.post("/v1/customers/c-2/push-subscriptions", json=SUB).status_code == 201


def test_saving_preferences_keeps_operator_throttle_overrides(client: TestClient,
                                                              runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json={"name": "One"})
    caps = {"caps": [{"name": "sms-daily", "limit": 1, "window": "1d", "channel": "sms"}]}
    with runtime.db.transaction() as session:
        customer = session.scalars(select(Customer)).one()
        customer.preferences = {**customer.preferences, "throttling": caps}
    assert client.put("/v1/customers/c-1/preferences",
                      json={"frequency": "important"}).status_code == 200
    with runtime.db.sessions() as session:
        stored = session.scalars(select(Customer)).one().preferences
    assert stored["throttling"] == caps and stored["frequency"] == "important"


