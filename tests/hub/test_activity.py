"""Customer traits and the activity the hub computes from its events: parcels and their
windows, delivery method, RFM, e-mail opens; export and erasure cover all of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub import activity
from hub.api.app import create_app
from hub.audience_models import CustomerActivity, CustomerParcel
from hub.models import Customer, Notification
from hub.receipts import apply_status
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import api_key, event

NOW = datetime.now(UTC)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def client(runtime: HubRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        c.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        yield c


@pytest.mark.parametrize("traits", [
    {f"k{i}": i for i in range(51)},  # too many keys
    {"Tier": "gold"},  # key pattern
    {"a" * 41: 1},
    {"tier": {"name": "gold"}},  # nesting
    {"tier": ["gold"]},
    {"tier": None},
    {"note": "x" * 201},
    {"points": 1e300},
    {"points": 10**30},
])
def test_bad_traits_are_422_on_the_api_and_on_an_event(client: TestClient,
                                                       traits: dict[str, Any]) -> None:
    reply = client.put("/v1/customers/c-1", json={"traits": traits})
    assert reply.status_code == 422 and any(
        e["path"].startswith("traits") for e in reply.json()["errors"]), reply.text
    body = event("e-1", customer={"id": "c-1", "traits": traits})
    assert client.post("/v1/events", json=body).status_code == 422


def test_traits_are_set_by_the_api_and_merged_from_newer_events(client: TestClient,
                                                                runtime: HubRuntime) -> None:
    put = client.put("/v1/customers/c-1", json={"traits": {"tier": "gold", "points": 10}})
    assert put.json()["traits"] == {"tier": "gold", "points": 10}
    now = datetime.now(UTC)  # after the PUT: the module's NOW may be minutes old by now
    later = event("e-1", customer={"id": "c-1", "traits": {"points": 25.5, "vip": True}},
                  occurred_at=(now + timedelta(minutes=1)).isoformat())
    older = event("e-0", customer={"id": "c-1", "traits": {"tier": "bronze"}},
                  occurred_at=(now - timedelta(days=1)).isoformat())
    for body in (later, older):
        assert client.post("/v1/events", json=body).status_code == 202
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    profile = client.get("/v1/customers/c-1").json()
    assert profile["traits"] == {"tier": "gold", "points": 25.5, "vip": True}


def _parcel(event_id: str, tracking: str, days_ago: int, type_: str = "parcel.in_transit",
            pickup: bool = False) -> dict[str, Any]:
    body = event(event_id, type_, customer={"id": "c-1"},
                 occurred_at=(NOW - timedelta(days=days_ago)).isoformat())
    body["parcel"]["tracking_number"] = tracking
    if not pickup:
        body["parcel"].pop("pickup_point")
    return body


def test_parcels_are_counted_once_per_window_with_the_latest_delivery_method(
        client: TestClient, runtime: HubRuntime) -> None:
    for body in (_parcel("a1", "PL-A", 100), _parcel("a2", "PL-A", 99),  # one parcel
                 _parcel("b1", "PL-B", 40, "parcel.out_for_delivery"),
                 _parcel("c1", "PL-C", 2, "parcel.ready_for_pickup", pickup=True),
                 _parcel("d1", "PL-D", 400)):
        assert client.post("/v1/events", json=body).status_code == 202, body
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()  # a re-run changes nothing
    with runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CustomerParcel)) == 4
        row = session.scalars(select(CustomerActivity)).one()
        assert (row.parcels_30d, row.parcels_90d, row.parcels_365d) == (1, 2, 3)
        assert row.last_delivery_method == "pickup_point"
        assert (row.rfm_recency, row.rfm_frequency, row.rfm) == (5, 2, "521")


def test_the_periodic_refresh_slides_windows_and_recency(runtime: HubRuntime) -> None:
    with runtime.db.transaction() as session:
        customer = Customer(tenant="default", external_id="c-1", preferences={})
        session.add(customer)
        session.flush()
        activity.note_parcels(session, [activity.ParcelSeen(
            customer.id, "default", f"PL{i}", NOW - timedelta(days=25 + i), None)
            for i in range(2)])
    ten_days_on = NOW + timedelta(days=10)
    with runtime.db.transaction() as session:
        assert activity.refresh_due(session, since=NOW, now=ten_days_on) == 1
        row = session.scalars(select(CustomerActivity)).one()
        assert (row.parcels_30d, row.parcels_90d, row.rfm_recency) == (0, 2, 3)
        assert activity.refresh_due(session, since=ten_days_on, now=ten_days_on) == 0


def test_a_known_parcel_costs_one_query_and_a_method_change_is_still_counted(
        runtime: HubRuntime) -> None:
    from sqlalchemy import event as sa_event

    with runtime.db.transaction() as session:
        customer = Customer(tenant="default", external_id="c-1", preferences={})
        session.add(customer)
        session.flush()
        pk = customer.id
        activity.note_parcels(session, [activity.ParcelSeen(
            pk, "default", "PL1", NOW - timedelta(days=1), "courier")])
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split()[0].upper())

    sa_event.listen(runtime.db.engine, "before_cursor_execute", seen)
    try:
        with runtime.db.transaction() as session:  # a later event, same parcel and method
            activity.note_parcels(session, [activity.ParcelSeen(
                pk, "default", "PL1", NOW, "courier")])
        assert [s for s in statements if s != "BEGIN"] == ["SELECT"]
        with runtime.db.transaction() as session:  # redirected to a pickup point
            activity.note_parcels(session, [activity.ParcelSeen(
                pk, "default", "PL1", NOW, "pickup_point")])
    finally:
        sa_event.remove(runtime.db.engine, "before_cursor_execute", seen)
    with runtime.db.sessions() as session:
        row = session.scalars(select(CustomerActivity)).one()
        assert (row.parcels_30d, row.last_delivery_method) == (1, "pickup_point")


def test_rfm_monetary_follows_the_conversion_total(runtime: HubRuntime) -> None:
    with runtime.db.transaction() as session:
        customer = Customer(tenant="default", external_id="c-1", preferences={})
        session.add(customer)
        session.flush()
        scores = []
        for value in ("150", "100", "300", "500"):  # totals 150, 250, 550, 1050
            activity.note_conversion(session, "default", customer.id, NOW, Decimal(value))
            scores.append(session.scalars(select(CustomerActivity.rfm_monetary)).one())
        assert scores == [2, 3, 4, 5]
        assert session.scalars(select(CustomerActivity.rfm)).one() == "115"  # no parcels


def test_an_email_open_is_counted_once_per_message(runtime: HubRuntime) -> None:
    with runtime.db.transaction() as session:
        note = Notification(idempotency_key="k", event_pk=_event(session), customer_id="c-1",
                            event_type="marketing.campaign", channel="email", status="sent",
                            history=[])
        session.add(note)
        session.flush()
        apply_status(note, "opened", receipt_id="r1", source="sendgrid")
        first = note.opened_at
        apply_status(note, "clicked", receipt_id="r2", source="sendgrid")
        apply_status(note, "opened", receipt_id="r3", source="sendgrid")
        assert first is not None and note.opened_at == first and note.status == "clicked"


def _event(session: Any) -> int:
    from hub.models import Event

    row = Event(producer="p", event_id="e", type="marketing.campaign", category="marketing",
                customer_id="c-1", occurred_at=NOW, payload_hash="h", payload={})
    session.add(row)
    session.flush()
    return row.id


def test_erasure_leaves_no_traits_parcels_or_activity(client: TestClient,
                                                      runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json={"traits": {"city": "Kraków"}})
    client.post("/v1/events", json=_parcel("a1", "PL-A", 1))
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
    export = client.get("/v1/customers/c-1/export").json()
    assert export["profile"]["traits"] == {"city": "Kraków"}
    assert export["marketing"]["parcels"][0]["tracking_number"] == "PL-A"
    assert client.delete("/v1/customers/c-1").status_code == 204
    with runtime.db.sessions() as session:
        for table in (CustomerParcel, CustomerActivity, Customer):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_migration_0011_derives_the_consent_bits_of_an_existing_ledger(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from hub.db import Database
    from hub.migrate import alembic_config

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        cfg = alembic_config(db.url)
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0010")
            conn.execute(text(
                "INSERT INTO customers (id, tenant, external_id, phone_verified, email_verified,"
                " locale, tone, time_zone, segment, preferences, created_at, updated_at) VALUES"
                " (1, 'default', 'c-1', 0, 0, 'pl', 'formal', 'Europe/Warsaw', 'individual',"
                " '{}', '2026-01-01', '2026-01-01')"))
            for purpose, channel, action in (("marketing", "email", "granted"),
                                             ("marketing", "sms", "granted"),
                                             ("marketing", "email", "withdrawn"),
                                             ("loyalty", "push", "granted")):
                conn.execute(text(
                    "INSERT INTO consents (tenant, customer_id, purpose, channel, action,"
                    " legal_basis, source, recorded_at) VALUES ('default', 'c-1', :p, :c, :a,"
                    " 'consent', 'api', '2026-01-01')"), {"p": purpose, "c": channel, "a": action})
            command.upgrade(cfg, "0011")
            mask = conn.execute(text("SELECT consent_mask FROM customer_activity")).scalar_one()
        assert mask == activity.consent_bit("marketing", "sms") | activity.consent_bit(
            "loyalty", "push")
    finally:
        db.dispose()


def test_the_consent_bits_follow_every_ledger_change(client: TestClient,
                                                     runtime: HubRuntime) -> None:
    client.put("/v1/customers/c-1", json={"email": "a@example.pl", "email_verified": True})
    count = {"filter": {"consent": {"purpose": "marketing", "channels": ["email"]}}}
    client.post("/v1/customers/c-1/consents", json={
        "purpose": "marketing", "channel": "email", "action": "granted", "source": "checkout"})
    assert client.post("/v1/audiences/count", json=count).json()["reachable"]["email"] == 1
    with runtime.db.transaction() as session:
        from hub.consents import unsubscribe

        unsubscribe(session, "c-1", "marketing", "email")  # the one-click link's path
    assert client.post("/v1/audiences/count", json=count).json()["matched"] == 0


def test_every_channel_has_a_consent_bit() -> None:
    """A channel added to preferences needs its bit appended to CONSENT_CHANNELS (stored
    order), or audiences could never count its consents."""
    from preferences.model import CHANNELS

    assert set(activity.CONSENT_CHANNELS) == set(CHANNELS)
