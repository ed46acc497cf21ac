"""Acceptance: erasure leaves no personal data and no way back; export holds every consent
row; retention purge clears old bodies and payloads."""

from __future__ import annotations

import io
import sys
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from hub.consents import stop_channel, unsubscribe
from hub.customers import get_customer, tombstone_key, upsert_inline
from hub.db import utcnow
from hub.gdpr import purge_expired
from hub.logs import configure
from hub.models import Base, ConsentRecord, Event, Notification
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import event

NAME, PHONE, EMAIL = "Anna Kowalska", "+48512345678", "anna.kowalska@example.pl"
ANNA = {"id": "c-1001", "name": NAME, "phone": PHONE, "email": EMAIL, "locale": "pl"}
NEEDLES = (NAME, "Kowalska", PHONE, "512345678", "512 345 678", EMAIL, "anna.kowalska")
SUB = {"endpoint": "https://fcm.googleapis.com/fcm/send/anna-device",
       "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVl",
                "auth": "tBHItJI5svbpez7K"}}


def table_dump(runtime: HubRuntime) -> str:
    """Every row of every table as text."""
    out = []
    with runtime.db.sessions() as session:
        for table in Base.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in session.execute(select(table))]
    return "\n".join(out)


def found(text: str) -> list[str]:
    return [n for n in NEEDLES if n.lower() in text.lower()]


def test_erasure_scrubs_every_table_and_log_and_blocks_resurrection(
    client: TestClient, drain, runtime: HubRuntime,
) -> None:
    logs = io.StringIO()
    configure("DEBUG", json=True, stream=logs)
    try:
        client.put("/v1/customers/c-1001", json={**{k: v for k, v in ANNA.items() if k != "id"},
                                                 "phone_verified": True})
        client.put("/v1/customers/c-9", json={"name": "Bystander", "phone": "+48601234567"})
        client.post("/v1/customers/c-1001/push-subscriptions", json=SUB)
        client.post("/v1/customers/c-1001/consents", json={
            "purpose": "marketing", "channel": "sms", "action": "granted", "source": "checkout"})
        client.put("/v1/customers/c-1001/preferences", json={"frequency": "all"})
        for eid, etype in (("e-1", "parcel.ready_for_pickup"), ("e-2", "marketing.campaign"),
                           ("e-3", "parcel.delivered")):
            client.post("/v1/events", json=event(eid, etype, customer=ANNA,
                                                 data={"note": f"for {NAME}"}))
        client.post("/v1/events", json=event("b-1", customer={"id": "c-9"}))
        drain()
        client.post("/v1/events", json=event("e-waiting", customer=ANNA))  # not yet processed
        assert found(table_dump(runtime))  # the scan does see the data before erasure

        assert client.delete("/v1/customers/c-1001").status_code == 204
        assert client.delete("/v1/customers/c-1001").status_code == 204  # idempotent
        assert client.get("/v1/customers/c-1001").status_code == 410
        assert found(table_dump(runtime)) == []
        assert client.get("/v1/customers/c-9").json()["phone"] == "+48601234567"
        waiting = client.get("/v1/events/e-waiting").json()
        assert waiting["state"] == "processed"
        assert {d["reason"] for d in waiting["decisions"]} == {"erased"}

        again = client.post("/v1/events", json=event("e-1", customer=ANNA,
                                                     data={"note": f"for {NAME}"}))
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert client.post("/v1/events", json=event("e-4", customer=ANNA)).status_code == 202
        drain()
        late = client.get("/v1/events/e-4").json()
        assert {(d["channel"], d["outcome"], d["reason"]) for d in late["decisions"]} == {
            ("sms", "skipped", "erased"), ("email", "skipped", "erased"),
            ("push", "skipped", "erased"), ("app_push", "skipped", "erased"),
            ("inbox", "skipped", "erased")}
        assert late["notifications"] == [] and late["payload"] is None
        assert late["customer_id"].startswith("erased-")
        assert client.get("/v1/customers/c-1001").status_code == 410
        assert client.put("/v1/customers/c-1001", json={"name": NAME}).status_code == 410
        assert found(table_dump(runtime)) == []
    finally:
        configure("INFO", json=True, stream=sys.stderr)
    assert "customer_erased" in logs.getvalue()
    assert found(logs.getvalue()) == []


def test_upsert_inline_respects_the_tombstone(client: TestClient, runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1001", json={"name": NAME})
    client.delete("/v1/customers/c-1001")
    key = tombstone_key(runtime.settings)
    with runtime.db.transaction() as session:
        assert upsert_inline(session, "default", ANNA, key) is None
        assert upsert_inline(session, "default", {"id": "c-new"}, key) is not None
    with runtime.db.sessions() as session:
        assert get_customer(session, "default", "c-1001") is None


def test_export_contains_every_consent_row(client: TestClient, runtime: HubRuntime,
                                           drain) -> None:
    client.put("/v1/customers/c-1001", json={"name": NAME, "phone": PHONE, "email": EMAIL})
    client.post("/v1/customers/c-1001/push-subscriptions", json=SUB)
    for purpose, channel, action, source in [
        ("marketing", "sms", "granted", "checkout"),
        ("marketing", "email", "granted", "checkout"),
        ("loyalty", "push", "granted", "preference_center"),
        ("profiling", "email", "granted", "support"),
        ("marketing", "sms", "withdrawn", "support"),
    ]:
        client.post("/v1/customers/c-1001/consents", json={
            "purpose": purpose, "channel": channel, "action": action, "source": source})
    with runtime.db.transaction() as session:
        unsubscribe(session, "c-1001", "marketing", "email")
        stop_channel(session, "c-1001", "push")
    client.post("/v1/events", json=event("e-1", customer={"id": "c-1001"}))
    drain()
    export = client.get("/v1/customers/c-1001/export").json()
    with runtime.db.sessions() as session:
        rows = session.scalars(select(ConsentRecord).where(ConsentRecord.customer_id == "c-1001")
                               .order_by(ConsentRecord.id)).all()
    assert len(rows) == 8
    assert [h["id"] for h in export["consents"]["history"]] == [r.id for r in rows]
    assert {h["source"] for h in export["consents"]["history"]} >= {"unsubscribe_link",
                                                                  "sms_stop", "checkout"}
    assert export["addresses"]["phone"] == PHONE and export["profile"]["name"] == NAME
    assert export["addresses"]["push_subscriptions"][0]["endpoint"] == SUB["endpoint"]
    assert export["preferences"]["channels"]["transactional"] == [
        "app_push", "sms", "email", "inbox"]
    assert export["events"][0]["payload"]["event_id"] == "e-1"
    assert export["notifications"][0]["content"]
    assert client.get("/v1/customers/nobody/export").status_code == 404


def test_retention_purge_clears_old_bodies_and_payloads(client: TestClient, drain,
                                                        runtime: HubRuntime) -> None:
    for eid in ("old", "new"):
        client.post("/v1/events", json=event(eid, customer=ANNA))
    drain()
    client.post("/v1/events", json=event("waiting", customer=ANNA))  # not yet processed
    long_ago = utcnow() - timedelta(days=runtime.settings.retention_days + 1)
    with runtime.db.transaction() as session:
        session.execute(update(Event).where(Event.event_id.in_(["old", "waiting"]))
                        .values(received_at=long_ago))
        session.execute(update(Notification).where(Notification.event_pk == select(Event.id)
                        .where(Event.event_id == "old").scalar_subquery())
                        .values(created_at=long_ago))
    report = purge_expired(runtime.db, runtime.settings)
    assert (report.bodies, report.payloads) == (1, 1)
    assert purge_expired(runtime.db, runtime.settings).payloads == 0  # idempotent
    with runtime.db.sessions() as session:
        payloads = dict(session.execute(select(Event.event_id, Event.payload)).all())
        bodies = [n.content for n in session.scalars(select(Notification)
                                                     .order_by(Notification.id))]
    assert payloads["old"] is None and payloads["new"] and payloads["waiting"]
    assert bodies[0] is None and bodies[1]
    drain()
    decisions = client.get("/v1/events/waiting").json()["decisions"]
    assert next(d for d in decisions if d["channel"] == "sms")["outcome"] == "sent"


def test_hub_purge_command_and_worker_daily_purge(runtime: HubRuntime, monkeypatch) -> None:
    from hub.cli import app
    from hub.settings import get_settings

    monkeypatch.setenv("HUB_DATABASE_URL", runtime.settings.database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["purge"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "purged 0 message bodies, 0 event payloads and 0 inbox items" in result.output
    purge = Worker(runtime.db, runtime.pipeline, runtime.settings).daily_purge
    assert purge.run_if_due() is not None
    assert purge.run_if_due() is None  # at most once a day
