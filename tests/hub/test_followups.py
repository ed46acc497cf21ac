"""Follow-up timers through the API and the worker: scheduled in the intake transaction,
fired once at deadline − offset (injectable clock), cancelled by a later event."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.api import create_app
from hub.db import utcnow
from hub.followups.firing import PRODUCER, fire_due
from hub.models import Event, FollowupTimer
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import api_key, event, make_runtime, read_outbox


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def ready(event_id: str, deadline: datetime, occurred: datetime | None = None,
          point: str = "WAW123M") -> dict[str, Any]:
    body = event(event_id, occurred_at=_iso(occurred or utcnow() - timedelta(minutes=5)))
    body["parcel"]["pickup_point"].update(id=point, deadline=_iso(deadline))
    return body


def _timers(client: TestClient, event_id: str) -> list[dict[str, Any]]:
    reply = client.get(f"/v1/events/{event_id}")
    assert reply.status_code == 200, reply.text
    return reply.json()["followups"]


def _drain(runtime: HubRuntime) -> None:
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()


def _reminders_sent(tmp_path: Path) -> list[dict[str, Any]]:
    return [m for m in read_outbox(tmp_path / "outbox.jsonl")
            if "Przypominamy" in m.get("body", "") or "Przypomnienie" in str(m)]


def test_reminders_at_deadline_minus_24h_and_4h_fire_once(
    client: TestClient, runtime: HubRuntime, tmp_path: Path
) -> None:
    deadline = utcnow().replace(microsecond=0) + timedelta(hours=30)
    assert client.post("/v1/events", json=ready("evt-r1", deadline)).status_code == 202
    timers = _timers(client, "evt-r1")
    assert [(t["offset"], t["state"]) for t in timers] == [("-24h", "scheduled"),
                                                           ("-4h", "scheduled")]
    assert datetime.fromisoformat(timers[0]["fire_at"]) == deadline - timedelta(hours=24)
    _drain(runtime)  # the ready_for_pickup notice itself
    before = len(read_outbox(tmp_path / "outbox.jsonl"))

    first = deadline - timedelta(hours=24)
    assert fire_due(runtime.db, now=first - timedelta(seconds=1)) == 0  # not yet due
    assert fire_due(runtime.db, now=first + timedelta(seconds=1)) == 1
    assert fire_due(runtime.db, now=first + timedelta(seconds=2)) == 0  # fired exactly once
    _drain(runtime)
    sent = read_outbox(tmp_path / "outbox.jsonl")[before:]
    assert len(sent) == 1 and "PL0001234567" in sent[0]["parts"]["body"]
    assert "24 godziny" in sent[0]["parts"]["body"], sent[0]["parts"]["body"]
    timers = _timers(client, "evt-r1")
    assert timers[0]["state"] == "fired"
    assert timers[0]["event_id"] == timers[0]["detail"]
    assert timers[0]["event_id"].startswith("pickup_reminder:") and timers[0]["event_id"].endswith(":-24h")
    assert timers[1]["state"] == "scheduled"

    assert fire_due(runtime.db, now=deadline - timedelta(hours=4)) == 1
    _drain(runtime)
    sent = read_outbox(tmp_path / "outbox.jsonl")[before:]
    assert len(sent) == 2 and "4 godziny" in sent[1]["parts"]["body"], sent[1]["parts"]["body"]
    with runtime.db.sessions() as s:
        fired = s.scalars(select(Event).where(Event.producer == PRODUCER)).all()
    assert sorted(e.type for e in fired) == ["parcel.pickup_reminder"] * 2
    assert all(e.state == "processed" for e in fired)


def test_delivered_before_the_reminder_cancels_it_and_nothing_is_sent(
    client: TestClient, runtime: HubRuntime, tmp_path: Path
) -> None:
    deadline = utcnow().replace(microsecond=0) + timedelta(hours=30)
    client.post("/v1/events", json=ready("evt-r1", deadline))
    delivered = event("evt-d1", type_="parcel.delivered", occurred_at=_iso(utcnow()))
    assert client.post("/v1/events", json=delivered).status_code == 202
    timers = _timers(client, "evt-r1")
    assert {(t["state"], t["reason"], t["cancelled_by"]) for t in timers} == {
        ("cancelled", "moot", "evt-d1")}
    _drain(runtime)
    fired = fire_due(runtime.db, now=deadline - timedelta(hours=1))
    _drain(runtime)
    with runtime.db.sessions() as s:
        followups = list(s.scalars(select(Event.type).where(Event.producer == PRODUCER)))
    # only the feedback request the delivery scheduled (+2 h) fired; no reminder exists
    assert fired == 1 and followups == ["parcel.feedback_request"]


def test_a_reminder_already_past_is_skipped_too_late(client: TestClient) -> None:
    deadline = utcnow() + timedelta(hours=10)
    client.post("/v1/events", json=ready("evt-r1", deadline))
    assert [(t["offset"], t["state"], t["reason"]) for t in _timers(client, "evt-r1")] == [
        ("-24h", "skipped", "too_late"), ("-4h", "scheduled", None)]


def test_a_newer_pickup_point_replaces_the_timers_and_the_same_one_is_a_duplicate(
    client: TestClient,
) -> None:
    now = utcnow()
    first, second = now + timedelta(hours=30), now + timedelta(hours=50)
    client.post("/v1/events", json=ready("evt-r1", first, now - timedelta(hours=2)))
    client.post("/v1/events", json=ready("evt-r2", second, now - timedelta(hours=1),
                                         point="KRA01M"))
    client.post("/v1/events", json=ready("evt-r3", second, now, point="KRA01M"))
    assert {(t["state"], t["reason"], t["cancelled_by"])
            for t in _timers(client, "evt-r1")} == {("cancelled", "replaced", "evt-r2")}
    assert {t["state"] for t in _timers(client, "evt-r2")} == {"scheduled"}
    assert {(t["state"], t["reason"]) for t in _timers(client, "evt-r3")} == {
        ("skipped", "duplicate")}


def test_an_older_delivered_arriving_late_still_makes_new_timers_moot(
    client: TestClient,
) -> None:
    now = utcnow()
    client.post("/v1/events", json=event("evt-d1", type_="parcel.delivered",
                                         occurred_at=_iso(now)))
    client.post("/v1/events", json=ready("evt-r1", now + timedelta(hours=30),
                                         now - timedelta(hours=1)))
    assert {(t["state"], t["reason"]) for t in _timers(client, "evt-r1")} == {
        ("skipped", "moot")}


def _points(event_id: str, occurred: datetime, **data: Any) -> dict[str, Any]:
    body = event(event_id, type_="loyalty.points_expiring", occurred_at=_iso(occurred), data=data)
    del body["parcel"]
    return body


def test_points_reminders_30_7_1_days_before_and_cancelled_when_points_are_spent(
    client: TestClient, runtime: HubRuntime,
) -> None:
    now = utcnow()
    expires = now + timedelta(days=40)
    client.post("/v1/events", json=_points("evt-p1", now, points=120,
                                           expires_at=_iso(expires)))
    timers = _timers(client, "evt-p1")
    assert [(t["offset"], t["state"]) for t in timers] == [
        ("-30d", "scheduled"), ("-7d", "scheduled"), ("-1d", "scheduled")]
    earned = event("evt-e1", type_="loyalty.points_earned", occurred_at=_iso(now),
                   data={"points": 5, "balance": 300})
    del earned["parcel"]
    client.post("/v1/events", json=earned)  # balance still covers the expiring points
    assert {t["state"] for t in _timers(client, "evt-p1")} == {"scheduled"}
    spent = {**earned, "event_id": "evt-e2", "data": {"points": 5, "balance": 40},
             "occurred_at": _iso(now + timedelta(seconds=1))}
    client.post("/v1/events", json=spent)
    assert {(t["state"], t["cancelled_by"]) for t in _timers(client, "evt-p1")} == {
        ("cancelled", "evt-e2")}


def test_an_accepted_event_and_its_timers_commit_together(runtime: HubRuntime) -> None:
    """A batch that fails as a whole leaves neither events nor timers."""
    from hub.events import EventIn
    from hub.intake import IdempotencyConflict, accept

    deadline = utcnow() + timedelta(hours=30)
    accept(runtime.db, "p", [EventIn.model_validate(ready("evt-r1", deadline))])
    clash = ready("evt-r1", deadline + timedelta(hours=1))  # same id, other content
    with pytest.raises(IdempotencyConflict):
        accept(runtime.db, "p", [EventIn.model_validate(ready("evt-r2", deadline)),
                                 EventIn.model_validate(clash)])
    with runtime.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(FollowupTimer)) == 2


def test_several_firing_loops_fire_each_timer_once(runtime: HubRuntime) -> None:
    """Three processes' loops racing over the same due timers (leases / SKIP LOCKED)."""
    import threading

    from hub.events import EventIn
    from hub.intake import accept

    deadline = utcnow() + timedelta(hours=30)
    accept(runtime.db, "p", [EventIn.model_validate(
        ready(f"evt-{i}", deadline) | {"parcel": {
            **event()["parcel"], "tracking_number": f"PL00000{i:05d}",
            "pickup_point": {"id": "WAW123M", "deadline": _iso(deadline)}}})
        for i in range(30)])
    due = deadline - timedelta(hours=3)
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(
        sum(fire_due(runtime.db, now=due, limit=5) for _ in range(20)))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with runtime.db.sessions() as s:
        fired = s.scalar(select(func.count()).select_from(Event)
                         .where(Event.producer == PRODUCER))
        states = s.scalars(select(FollowupTimer.state)).all()
    assert sum(counts) == fired == 60 and set(states) == {"fired"}


def test_feedback_request_2h_after_delivery_once_per_customer_per_30_days(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The packaged feedback rule is active once `parcel.feedback_request` is a known type
    (the feedback category registers it; here a types file does)."""
    from hub.settings import get_settings

    types = tmp_path / "types.toml"
    types.write_text('[types."parcel.feedback_request"]\ncategory = "transactional"\n')
    monkeypatch.setenv("HUB_EVENT_TYPES_FILE", str(types))
    get_settings.cache_clear()
    rt = make_runtime(database_url, tmp_path)
    try:
        with TestClient(create_app(rt)) as client:
            client.headers["Authorization"] = f"Bearer {api_key(rt)}"
            now = utcnow().replace(microsecond=0)
            client.post("/v1/events", json=event("evt-d1", type_="parcel.delivered",
                                                 occurred_at=_iso(now)))
            second = event("evt-d2", type_="parcel.delivered", occurred_at=_iso(now))
            second["parcel"]["tracking_number"] = "PL0009999999"
            client.post("/v1/events", json=second)
            (first,) = _timers(client, "evt-d1")
            assert (first["rule"], first["offset"], first["state"]) == (
                "feedback_request", "+2h", "scheduled")
            assert datetime.fromisoformat(first["fire_at"]) == now + timedelta(hours=2)
            assert [(t["state"], t["reason"]) for t in _timers(client, "evt-d2")] == [
                ("skipped", "once_per_customer")]
            assert fire_due(rt.db, now=now + timedelta(hours=2, seconds=1)) == 1
            with rt.db.sessions() as s:
                fired = s.scalars(select(Event).where(Event.producer == PRODUCER)).one()
            assert fired.type == "parcel.feedback_request"
            assert fired.payload["data"]["followup"] == {"rule": "feedback_request",
                                                         "offset": "+2h", "of": "evt-d1"}
    finally:
        rt.db.dispose()
        get_settings.cache_clear()


def test_delivered_schedules_the_packaged_feedback_request(client: TestClient) -> None:
    client.post("/v1/events", json=event("evt-d1", type_="parcel.delivered",
                                         occurred_at=_iso(utcnow())))
    assert [(t["rule"], t["type"], t["offset"], t["state"])
            for t in _timers(client, "evt-d1")] == [
        ("feedback_request", "parcel.feedback_request", "+2h", "scheduled")]


def test_no_key_may_post_as_the_hubs_own_producer(runtime: HubRuntime) -> None:
    from hub.keys import Scope, create_key

    with pytest.raises(ValueError, match="hub's own"):
        create_key(runtime.db, PRODUCER, [Scope.EVENTS_WRITE])


def test_both_reminders_of_a_parcel_pass_the_packaged_throttling_policy(
    database_url: str, tmp_path: Path,
) -> None:
    """The −4 h reminder is not a duplicate of the −24 h one (same parcel, status, channel)."""
    from throttling.policy import DEFAULT_POLICY_FILE

    policy = tmp_path / "policy.toml"  # the packaged policy without quiet hours: any hour
    policy.write_text(DEFAULT_POLICY_FILE.read_text("utf-8").replace(
        "[quiet_hours]\nenabled = true", "[quiet_hours]\nenabled = false"), "utf-8")
    rt = make_runtime(database_url, tmp_path, throttle_backend="memory",
                      throttle_policy_file=str(policy))
    try:
        from hub.events import EventIn
        from hub.intake import accept

        deadline = utcnow().replace(microsecond=0) + timedelta(hours=30)
        accept(rt.db, "p", [EventIn.model_validate(ready("evt-r1", deadline))])
        _drain(rt)
        for offset in (24, 4):
            assert fire_due(rt.db, now=deadline - timedelta(hours=offset)) == 1
            _drain(rt)
        with rt.db.sessions() as s:
            states = s.scalars(select(Event.state).where(Event.producer == PRODUCER)).all()
        sent = read_outbox(tmp_path / "outbox.jsonl")
        assert len(sent) == 3 and states == ["processed", "processed"], sent
        assert "24 godziny" in sent[1]["parts"]["body"]
        assert "Ostatnie godziny" in sent[2]["parts"]["body"]
    finally:
        rt.db.dispose()


def test_a_fired_points_reminder_carries_days_left_and_renders(
    client: TestClient, runtime: HubRuntime,
) -> None:
    from templates import RenderRequest
    from templates.samples import PROFILES

    now = utcnow().replace(microsecond=0)
    expires = now + timedelta(days=40)
    client.post("/v1/events", json=_points("evt-p1", now, points=112, expires_at=_iso(expires)))
    assert fire_due(runtime.db, now=expires - timedelta(days=30)) == 1
    with runtime.db.sessions() as s:
        fired = s.scalars(select(Event).where(Event.producer == PRODUCER)).one()
    assert fired.type == "loyalty.points_expiry_reminder" and fired.category == "loyalty"
    assert fired.payload["data"]["days_left"] == 30 and fired.payload["data"]["points"] == 112
    renderer = runtime.pipeline.stages.renderer
    ctx = renderer.context(fired.payload, PROFILES["pl"], now=expires - timedelta(days=30))
    title = renderer.render(RenderRequest(fired.type, "push", ("pl",), "informal",
                                          ctx)).parts["title"]
    assert title == "Zostało 30 dni: 112 punktów wygaśnie"


def test_retention_keeps_the_payload_a_distant_timer_still_needs(
    client: TestClient, runtime: HubRuntime,
) -> None:
    """Points expiring in 200 days: the −30 d reminder fires after the 90-day retention
    purge, so the purge must leave that event's payload alone."""
    from hub.gdpr import purge_expired

    now = utcnow().replace(microsecond=0)
    expires = now + timedelta(days=200)
    client.post("/v1/events", json=_points("evt-p1", now, points=50, expires_at=_iso(expires)))
    client.post("/v1/events", json=event("evt-t1", type_="parcel.in_transit",
                                         occurred_at=_iso(now)))
    _drain(runtime)
    purge_expired(runtime.db, runtime.settings, now=now + timedelta(days=120))
    with runtime.db.sessions() as s:
        payloads = dict(s.execute(select(Event.event_id, Event.payload)).tuples().all())
    assert payloads["evt-p1"] is not None and payloads["evt-t1"] is None
    assert fire_due(runtime.db, now=expires - timedelta(days=30)) == 1


def test_timers_are_per_tenant(client: TestClient, runtime: HubRuntime) -> None:
    """Another tenant's `delivered` for the same tracking number cancels nothing here."""
    from hub.keys import Scope, create_key

    other = create_key(runtime.db, "other-carrier", [Scope.ADMIN], tenant="other")
    deadline = utcnow() + timedelta(hours=30)
    client.post("/v1/events", json=ready("evt-r1", deadline))
    delivered = event("evt-d1", type_="parcel.delivered", occurred_at=_iso(utcnow()))
    reply = client.post("/v1/events", json=delivered,
                        headers={"Authorization": f"Bearer {other}"})
    assert reply.status_code == 202
    assert {t["state"] for t in _timers(client, "evt-r1")} == {"scheduled"}
    # our −24 h reminder, and the other tenant's feedback request (+2 h after its delivery)
    assert fire_due(runtime.db, now=deadline - timedelta(hours=24)) == 2
    fired_id = _timers(client, "evt-r1")[0]["event_id"]
    assert client.get(f"/v1/events/{fired_id}").status_code == 200  # same tenant: visible
    seen = client.get(f"/v1/events/{fired_id}", headers={"Authorization": f"Bearer {other}"})
    assert seen.status_code == 404  # another tenant's follow-up: as if it did not exist
