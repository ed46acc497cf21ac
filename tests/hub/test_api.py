"""The intake API as a producer uses it: idempotency, errors, auth, read-back."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.keys import Scope
from hub.runtime import HubRuntime
from tests.helpers import api_key, event, read_outbox


def drain(runtime: HubRuntime) -> None:
    from hub.worker import Worker

    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()


def test_same_event_three_times_makes_one_notification(
    client: TestClient, runtime: HubRuntime, tmp_path: Path
) -> None:
    first = client.post("/v1/events", json=event())
    assert first.status_code == 202
    assert first.json()["status"] == "accepted"
    for _ in range(2):
        again = client.post("/v1/events", json=event())
        assert again.status_code == 200
        assert again.json()["status"] == "duplicate"
    drain(runtime)
    client.post("/v1/events", json=event())
    drain(runtime)
    sent = read_outbox(tmp_path / "outbox.jsonl")
    assert len(sent) == 1
    assert sent[0]["to"] == "+48512345678"
    body = client.get("/v1/events/evt-1").json()
    assert body["state"] == "processed"
    assert [(d["channel"], d["outcome"], d["reason"]) for d in body["decisions"]] == [
        ("inbox", "skipped", "no_address"),  # no app installed
        ("app_push", "skipped", "no_address"),
        ("sms", "sent", "sent"),
        ("email", "skipped", "fallback_not_needed"),
        ("push", "skipped", "no_address"),
    ]
    assert body["notifications"][0]["status"] == "sent"


def test_same_id_other_content_is_409(client: TestClient) -> None:
    assert client.post("/v1/events", json=event()).status_code == 202
    reply = client.post("/v1/events", json=event(data={"changed": True}))
    assert reply.status_code == 409
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["event_ids"] == ["evt-1"]


def test_batch_is_all_or_nothing(client: TestClient) -> None:
    assert client.post("/v1/events", json=event("evt-1")).status_code == 202
    batch = {"events": [event("evt-2"), event("evt-1", data={"x": 1})]}
    assert client.post("/v1/events/batch", json=batch).status_code == 409
    assert client.get("/v1/events/evt-2").status_code == 404
    ok = client.post("/v1/events/batch", json={"events": [event("evt-2"), event("evt-1")]})
    assert ok.status_code == 202
    assert [r["status"] for r in ok.json()["results"]] == ["accepted", "duplicate"]


def test_batch_limit(client: TestClient) -> None:
    events = [event(f"e-{i}") for i in range(501)]
    reply = client.post("/v1/events/batch", json={"events": events})
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["path"] == "events"


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        (event(type_="parcel.teleported"), 422, "type"),
        (event(occurred_at="2026-11-25T14:20:00"), 422, "occurred_at"),
        (event(occurred_at=12), 422, "occurred_at"),
        (event(customer={"phone": "+48512345678"}), 422, "customer/id"),
        (event(parcel=None), 422, "(body)"),
        (event(parcel={"tracking_number": "PL1", "cod": {"amount": "abc", "currency": "PLN"}}),
         422, "parcel/cod/amount"),
        ([1, 2], 422, "(body)"),
    ],
)
def test_validation_problems_name_the_field(
    client: TestClient, body: object, status: int, path: str
) -> None:
    reply = client.post("/v1/events", json=body)
    assert reply.status_code == status, reply.text
    problem = reply.json()
    assert reply.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert path in [e["path"] for e in problem["errors"]]


def test_malformed_json_is_400(client: TestClient) -> None:
    reply = client.post("/v1/events", content=b'{"event_id": ', headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["type"].endswith("/malformed-json")


def test_oversized_body_is_413(client: TestClient) -> None:
    big = event(data={"blob": "x" * (1024 * 1024 + 10)})
    reply = client.post("/v1/events", json=big)
    assert reply.status_code == 413
    assert reply.json()["status"] == 413


def test_keys_and_scopes(client: TestClient, runtime: HubRuntime) -> None:
    anonymous = client.post("/v1/events", json=event(), headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.json()["type"].endswith("/unauthorized")
    forged = client.post("/v1/events", json=event(), headers={"Authorization": "Bearer hub_x_y"})
    assert forged.status_code == 401
    reader = api_key(runtime, Scope.EVENTS_READ)
    denied = client.post("/v1/events", json=event(), headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
    assert denied.json()["required_scope"] == "events:write"
    writer = api_key(runtime, Scope.EVENTS_WRITE)
    assert client.post("/v1/events", json=event(), headers={"X-API-Key": writer}).status_code == 202


def test_producers_do_not_see_each_other(client: TestClient, runtime: HubRuntime) -> None:
    assert client.post("/v1/events", json=event()).status_code == 202
    other = api_key(runtime, Scope.ADMIN, producer="other-carrier")
    reply = client.get("/v1/events/evt-1", headers={"Authorization": f"Bearer {other}"})
    assert reply.status_code == 404
    # the same event id is free for another producer
    posted = client.post("/v1/events", json=event(), headers={"Authorization": f"Bearer {other}"})
    assert posted.status_code == 202


def test_notifications_are_filtered_and_paged(client: TestClient, runtime: HubRuntime) -> None:
    for i in range(5):
        parcel = {**event()["parcel"], "tracking_number": f"PL{i:05d}"}
        client.post("/v1/events", json=event(f"e-{i}", parcel=parcel))
    drain(runtime)
    page = client.get("/v1/notifications", params={"customer_id": "c-1001", "limit": 2}).json()
    assert len(page["items"]) == 2 and page["next"] is not None
    seen = [n["parcel"] for n in page["items"]]
    while page["next"] is not None:
        page = client.get("/v1/notifications",
                          params={"customer_id": "c-1001", "limit": 2, "after": page["next"]}).json()
        seen += [n["parcel"] for n in page["items"]]
    assert seen == [f"PL{i:05d}" for i in reversed(range(5))]
    only = client.get("/v1/notifications", params={"parcel": "PL00003"}).json()
    assert [n["parcel"] for n in only["items"]] == ["PL00003"]
    assert client.get("/v1/notifications", params={"status": "failed"}).json()["items"] == []


def test_health_ready_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post("/v1/events", json=event())
    text = client.get("/metrics").text
    assert "hub_events_accepted_total" in text
    assert "hub_outbox_lag_seconds" in text
    assert client.get("/openapi.json").json()["info"]["title"] == "Parcel Hub"
    assert client.get("/v1/nothing-here").headers["content-type"] == "application/problem+json"
