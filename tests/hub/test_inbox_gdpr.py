"""Inbox items and app devices under GDPR (issue 14): retention purges old items, erasure
removes items and devices, export lists both (devices among the addresses)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.api.app import create_app
from hub.customers import get_customer
from hub.db import utcnow
from hub.gdpr import purge_expired
from hub.models import Device, InboxItem
from hub.runtime import HubRuntime
from tests.helpers import api_key, make_runtime
from tests.hub.inbox_rows import add_item

TOKEN = "fcm-registration-token-of-annas-phone-0123456789abcdef"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HubRuntime, TestClient]]:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, retention_days=30)
    with TestClient(create_app(runtime)) as client:
        client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        for cid in ("c-1", "c-2"):
            client.put(f"/v1/customers/{cid}", json={"name": "Anna Kowalska"})
        with runtime.db.transaction() as session:
            customer = get_customer(session, "default", "c-1")
            assert customer is not None
            session.add(Device(customer_pk=customer.id, platform="android", token=TOKEN,
                               app_id="pl.example.parcels", app_version="5.2.0", locale="pl"))
        yield runtime, client
    runtime.db.dispose()


def _count(runtime: HubRuntime, model: Any) -> int:
    with runtime.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_retention_purges_items_older_than_the_retention_days(hub: Any) -> None:
    runtime, client = hub
    add_item(runtime.db, "c-1", "old", created_at=utcnow() - timedelta(days=31))
    recent = add_item(runtime.db, "c-1", "recent", created_at=utcnow() - timedelta(days=29))
    report = purge_expired(runtime.db, runtime.settings)
    assert report.inbox_items == 1
    assert [i["id"] for i in client.get("/v1/inbox/c-1").json()["items"]] == [recent]
    assert purge_expired(runtime.db, runtime.settings).inbox_items == 0


def test_export_lists_devices_and_inbox_items(hub: Any) -> None:
    runtime, client = hub
    item = add_item(runtime.db, "c-1", "Paczka czeka")
    add_item(runtime.db, "c-2", "someone else's")
    data = client.get("/v1/customers/c-1/export").json()
    assert [i["id"] for i in data["inbox"]] == [item]
    [device] = data["addresses"]["devices"]
    assert device["token"] == TOKEN  # the data subject's own data, like push subscriptions
    assert (device["platform"], device["app_id"], device["active"]) == (
        "android", "pl.example.parcels", True)


def test_erasure_removes_inbox_items_and_devices(hub: Any) -> None:
    runtime, client = hub
    add_item(runtime.db, "c-1")
    add_item(runtime.db, "c-2")
    assert client.delete("/v1/customers/c-1").status_code == 204
    assert (_count(runtime, InboxItem), _count(runtime, Device)) == (1, 0)
    assert client.get("/v1/inbox/c-1").status_code == 410
    assert client.get("/v1/inbox/c-2").json()["unread_count"] == 1
