"""Acceptance (issue 11, item 5): after DELETE /v1/customers/{id}, no table (every column of
every table, found by reflection), no Redis key under the hub's prefix, no console outbox
line and no captured log line holds the customer's name, phone, e-mail or external id; what
is kept (the STOP suppression) is a keyed hash and still honoured."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from hub.api.app import create_app
from hub.customers import customer_key, tombstone_key
from hub.db import utcnow
from hub.gdpr import purge_expired
from hub.keys import Scope, create_key
from hub.logs import configure
from hub.models import Customer
from hub.receipts import apply_inbound_keyword
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.conftest import need_service
from tests.helpers import event, make_runtime

NAME, PHONE, EMAIL, CID = "Anna Kowalska", "+48512345678", "anna.kowalska@example.pl", "c-1001"
ANNA = {"id": CID, "name": NAME, "phone": PHONE, "email": EMAIL, "locale": "pl"}
NEEDLES = (NAME, "Kowalska", PHONE, "512345678", "512 345 678", EMAIL, "anna.kowalska", CID)
SUB = {"endpoint": "https://fcm.googleapis.com/fcm/send/anna-device",
       "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVl",
                "auth": "tBHItJI5svbpez7K"}}
# Operator overrides: no quiet hours (the test must not depend on the time of day).
OVERRIDES = {"quiet_hours": {"enabled": False}}


def found(text: str) -> list[str]:
    return [n for n in NEEDLES if n.lower() in text.lower()]


def reflected_rows(runtime: HubRuntime) -> str:
    """Every column of every row of every table the database has (reflection, so a table
    the models forgot is scanned too)."""
    meta = MetaData()
    meta.reflect(runtime.db.engine)
    out = []
    with runtime.db.engine.connect() as conn:
        for table in meta.sorted_tables:
            out += [f"{table.name}: {tuple(row)!r}" for row in conn.execute(select(table))]
    return "\n".join(out)


def redis_dump(client: redis.Redis, prefix: str) -> str:
    """Every key under the prefix with its contents."""
    out = []
    for key in client.scan_iter(match=f"{prefix}*"):
        kind = client.type(key).decode()
        value: Any = {"hash": client.hgetall, "zset": lambda k: client.zrange(k, 0, -1),
                      "string": client.get, "set": client.smembers,
                      "list": lambda k: client.lrange(k, 0, -1)}[kind](key)
        out.append(f"{key!r} {value!r}")
    return "\n".join(out)


@pytest.fixture(params=["sql", pytest.param("redis", marks=pytest.mark.redis)])
def hub(request: pytest.FixtureRequest, database_url: str, tmp_path: Path
        ) -> Iterator[tuple[HubRuntime, TestClient]]:
    backend: str = request.param
    extra: dict[str, Any] = {}
    if backend == "redis":
        need_service("Redis", 6379)
        extra = {"redis_url": "redis://127.0.0.1:6379/0",
                 "throttle_redis_prefix": f"hubtest:{uuid.uuid4().hex[:8]}:"}
    runtime = make_runtime(database_url, tmp_path, throttle_backend=backend,
                           public_base_url="http://testserver", **extra)
    with TestClient(create_app(runtime)) as client:
        client.headers["Authorization"] = f"Bearer {create_key(runtime.db, 'p', [Scope.ADMIN])}"
        yield runtime, client
    runtime.pipeline.stages.limiter.close()
    runtime.db.dispose()


def _populate(runtime: HubRuntime, client: TestClient) -> None:
    """Anna everywhere: profile, push, consents, events sent on the console, a digest hold,
    limiter counters and parcel ledger, a STOP from her number (keyword + suppression)."""
    client.put(f"/v1/customers/{CID}", json={**{k: v for k, v in ANNA.items() if k != "id"},
                                            "phone_verified": True, "email_verified": True})
    client.post(f"/v1/customers/{CID}/push-subscriptions", json=SUB)
    for channel in ("email", "sms"):
        client.post(f"/v1/customers/{CID}/consents", json={
            "purpose": "marketing", "channel": channel, "action": "granted",
            "source": "checkout"})
    with runtime.db.transaction() as session:
        customer = session.scalars(select(Customer)).one()
        customer.preferences = {**customer.preferences, "throttling": OVERRIDES}
    drain = Worker(runtime.db, runtime.pipeline, runtime.settings).drain
    for eid in ("e-1", "e-2"):
        client.post("/v1/events", json=event(eid, customer=ANNA, data={"note": f"for {NAME}"}))
    drain()
    client.put(f"/v1/customers/{CID}/preferences", json={"frequency": "digest"})
    client.post("/v1/events", json=event("m-1", "marketing.campaign", customer=ANNA,
                                         data={"note": f"for {NAME}"}))
    drain()
    with runtime.db.transaction() as session:
        apply_inbound_keyword(session, "sms", PHONE, "STOP", "twilio", "SM-anna",
                              tenant="default", key=tombstone_key(runtime.settings))


def test_erasure_leaves_no_identifier_anywhere(hub: tuple[HubRuntime, TestClient]) -> None:
    runtime, client = hub
    logs = io.StringIO()
    configure("DEBUG", json=True, stream=logs)
    outbox = Path(runtime.settings.console_outbox_path)
    store = runtime.pipeline.stages.limiter.store
    prefix = getattr(store, "prefix", "")
    rclient = getattr(store, "client", None)
    try:
        _populate(runtime, client)
        export = client.get(f"/v1/customers/{CID}/export").json()
        assert found(reflected_rows(runtime)) and found(outbox.read_text())  # scan sees data
        assert export["suppressions"][0]["address"] == PHONE
        assert export["inbound_keywords"][0]["keyword"] == "STOP"
        assert export["throttling"]["digest_holds"] and export["preferences"]["throttling"]
        ckey = customer_key(tombstone_key(runtime.settings), "default", CID)
        if rclient is not None:
            assert ckey in redis_dump(rclient, prefix)
            assert any(isinstance(v, dict) for v in export["throttling"]["backend"].values())

        assert client.delete(f"/v1/customers/{CID}").status_code == 204
        assert client.get(f"/v1/customers/{CID}").status_code == 410
        assert found(reflected_rows(runtime)) == []
        assert found(outbox.read_text()) == []
        assert ckey not in reflected_rows(runtime)  # limiter rows and holds are gone too
        if rclient is not None:
            assert found(redis_dump(rclient, prefix)) == []
            assert ckey not in redis_dump(rclient, prefix)

        # The STOP is kept as a keyed hash and still honoured for a new profile.
        client.put("/v1/customers/c-2002", json={"phone": PHONE, "phone_verified": True})
        client.post("/v1/events", json=event("n-1", customer={"id": "c-2002"}))
        Worker(runtime.db, runtime.pipeline, runtime.settings).drain()
        decisions = client.get("/v1/events/n-1").json()["decisions"]
        sms = next(d for d in decisions if d["channel"] == "sms")
        assert (sms["outcome"], sms["reason"]) == ("skipped", "no_address")
        client.delete("/v1/customers/c-2002")
    finally:
        configure("INFO", json=True, stream=sys.stderr)
    assert "customer_erased" in logs.getvalue()
    assert found(logs.getvalue()) == []
    for line in outbox.read_text().splitlines():
        json.loads(line)  # the rewritten outbox is still one JSON object per line


def test_unreleased_digest_holds_are_purged_by_retention(hub: tuple[HubRuntime, TestClient]
                                                         ) -> None:
    runtime, client = hub
    _populate(runtime, client)
    assert client.get(f"/v1/customers/{CID}/export").json()["throttling"]["digest_holds"]
    later = utcnow().replace(year=utcnow().year + 1)
    report = purge_expired(runtime.db, runtime.settings, now=later)
    assert report.digest_holds >= 1
    assert client.get(f"/v1/customers/{CID}/export").json()["throttling"]["digest_holds"] == []
