"""Parcel journeys through the real pipeline and worker with the SQL (and Redis) limiter."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hub.api import create_app
from hub.models import ConsentRecord, Customer, OutboxJob
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.conftest import REDIS_URL, need_service
from tests.helpers import api_key, event, make_runtime, read_outbox
from throttling.backends.sql_tables import throttle_digest

DAYTIME_POLICY = """
[[caps]]
name = "transactional_burst"
categories = ["transactional"]
per_channel = true
limit = 10
window = "1h"

[quiet_hours]
enabled = false

[collapse]
hold = "{hold}"
"""


# Long enough that posting and draining finish inside it on a loaded CI machine (1 s was not).
HOLD = timedelta(seconds=5)


def start(database_url: str, tmp_path: Path, hold: str = "0s", **over: Any) -> HubRuntime:
    policy = tmp_path / "policy.toml"
    policy.write_text(DAYTIME_POLICY.format(hold=hold), "utf-8")
    over.setdefault("throttle_backend", "sql")
    return make_runtime(database_url, tmp_path, throttle_policy_file=str(policy), **over)


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[HubRuntime]:
    rt = start(database_url, tmp_path)
    yield rt
    rt.db.dispose()


def client_for(runtime: HubRuntime) -> TestClient:
    client = TestClient(create_app(runtime))
    client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
    return client


def drain(runtime: HubRuntime) -> None:
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain()


def decisions(client: TestClient, event_id: str) -> list[tuple[str, str, str]]:
    """The event's decisions, without the app channels (these customers have no app)."""
    body = client.get(f"/v1/events/{event_id}").json()
    return [(d["channel"], d["outcome"], d["reason"]) for d in body["decisions"]
            if not (d["channel"] in ("inbox", "app_push") and d["outcome"] == "skipped")]


def post(client: TestClient, event_id: str, type_: str, **over: Any) -> None:
    reply = client.post("/v1/events", json=event(event_id, type_, **over))
    assert reply.status_code == 202, reply.text


def test_out_of_order_journey_sends_delivered_only(runtime: HubRuntime, tmp_path: Path) -> None:
    with client_for(runtime) as client:
        post(client, "evt-delivered", "parcel.delivered")
        post(client, "evt-out", "parcel.out_for_delivery")
        drain(runtime)
        sent = read_outbox(tmp_path / "outbox.jsonl")
        assert len(sent) == 1 and "doreczona" in str(sent[0]).lower()  # folded to GSM-7
        assert decisions(client, "evt-out")[0] == ("sms", "dropped", "stale_status")
        post(client, "evt-delivered-again", "parcel.delivered")  # same status, new event id
        drain(runtime)
        assert len(read_outbox(tmp_path / "outbox.jsonl")) == 1
        assert decisions(client, "evt-delivered-again")[0] == ("sms", "dropped", "duplicate")


def test_redis_backend_drops_the_same_journey(tmp_path: Path) -> None:
    need_service("Redis", 6379)
    prefix = f"test:journey:{secrets.token_hex(4)}:"
    rt = start(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, throttle_backend="redis",
               redis_url=REDIS_URL, throttle_redis_prefix=prefix)
    try:
        with client_for(rt) as client:
            post(client, "evt-delivered", "parcel.delivered")
            post(client, "evt-out", "parcel.out_for_delivery")
            post(client, "evt-delivered-again", "parcel.delivered")
            drain(rt)
            assert len(read_outbox(tmp_path / "outbox.jsonl")) == 1
            assert decisions(client, "evt-out")[0][2] == "stale_status"
            assert decisions(client, "evt-delivered-again")[0][2] == "duplicate"
    finally:
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        r.close()
        rt.db.dispose()


def test_a_failed_send_gives_the_status_back_for_the_fallback(
    runtime: HubRuntime, tmp_path: Path
) -> None:
    with client_for(runtime) as client:
        post(client, "evt-1", "parcel.ready_for_pickup")
        post(client, "evt-2", "parcel.ready_for_pickup",
             customer={"id": "c-2", "email": "x@example.pl"})
        drain(runtime)
        # one message per customer: dedupe is per (customer, parcel, status, channel)
        assert len(read_outbox(tmp_path / "outbox.jsonl")) == 2


def test_held_status_superseded_while_waiting(database_url: str, tmp_path: Path) -> None:
    rt = start(database_url, tmp_path, hold=f"{HOLD.seconds}s")
    now = datetime.now(UTC)
    try:
        with client_for(rt) as client:
            post(client, "evt-transit", "parcel.in_transit", occurred_at=now.isoformat())
            drain(rt)
            assert decisions(client, "evt-transit")[0] == ("sms", "deferred", "collapse_hold")
            with rt.db.sessions() as session:
                not_before = session.scalars(select(OutboxJob.not_before)).one()
            assert abs((not_before - (now + HOLD)).total_seconds()) < 0.01
            post(client, "evt-out", "parcel.out_for_delivery", occurred_at=now.isoformat())
            drain(rt)
            assert decisions(client, "evt-out")[0] == ("sms", "sent", "sent")
            time.sleep(max(0.0, (not_before - datetime.now(UTC)).total_seconds()) + 0.1)
            drain(rt)
            assert decisions(client, "evt-transit")[0] == ("sms", "dropped", "superseded")
            assert len(read_outbox(tmp_path / "outbox.jsonl")) == 1
    finally:
        rt.db.dispose()


def test_daily_digest_holds_and_releases_one_message(database_url: str, tmp_path: Path) -> None:
    rt = start(database_url, tmp_path)
    with rt.db.transaction() as session:  # chose the daily digest and consented to loyalty e-mail
        session.add(Customer(external_id="c-1001", email="anna.kowalska@example.pl",
                             email_verified=True, preferences={
                                 "frequency": "digest", "throttling": {"digest": {"hour": 18}}}))
        session.add(ConsentRecord(customer_id="c-1001", purpose="loyalty", channel="email",
                                  action="granted", legal_basis="consent", source="checkout"))
    loyalty = {"parcel": None, "data": {"points": 10}}
    try:
        with client_for(rt) as client:
            post(client, "evt-points", "loyalty.points_earned", **loyalty)
            post(client, "evt-tier", "loyalty.tier_reached", **loyalty)
            drain(rt)
            assert decisions(client, "evt-points")[0] == ("email", "deferred", "digest_held")
            assert read_outbox(tmp_path / "outbox.jsonl") == []
            # the customer's hour has come: move the clock of the held rows and jobs
            past = datetime.now(UTC) - timedelta(seconds=1)
            with rt.db.transaction() as session:
                session.execute(update(throttle_digest).values(
                    due_ms=int(past.timestamp() * 1000)))
                session.execute(update(OutboxJob).values(not_before=past))
            drain(rt)  # both jobs are re-checked and confirm their items, then gather
            assert read_outbox(tmp_path / "outbox.jsonl") == []
            long_ago = datetime.now(UTC) - timedelta(minutes=2)
            with rt.db.transaction() as session:
                session.execute(update(throttle_digest).values(
                    ready_ms=int(long_ago.timestamp() * 1000)))
                session.execute(update(OutboxJob).values(not_before=past))
            drain(rt)
            sent = read_outbox(tmp_path / "outbox.jsonl")
            assert len(sent) == 1
            text = sent[0]["parts"]["text"]
            assert "2 nowe powiadomienia" in text and "+10 punktów" in text
            outcomes = {decisions(client, e)[0][2] for e in ("evt-points", "evt-tier")}
            assert outcomes == {"sent", "digest_merged"}
    finally:
        rt.db.dispose()


def test_released_message_is_resolved_again(database_url: str, tmp_path: Path) -> None:
    rt = start(database_url, tmp_path, hold=f"{HOLD.seconds}s")
    now = datetime.now(UTC)
    try:
        with client_for(rt) as client:
            post(client, "evt-transit", "parcel.in_transit", occurred_at=now.isoformat())
            drain(rt)
            assert decisions(client, "evt-transit")[0] == ("sms", "deferred", "collapse_hold")
            with rt.db.transaction() as session:  # meanwhile the customer prefers e-mail
                session.execute(update(Customer).values(
                    preferences={"channels": {"transactional": ["email"]}}))
            time.sleep(max(0.0, (now + HOLD - datetime.now(UTC)).total_seconds()) + 0.1)
            drain(rt)
            assert decisions(client, "evt-transit")[0] == ("email", "sent", "sent")
            assert ("sms", "skipped", "opted_out_channel") in decisions(client, "evt-transit")
    finally:
        rt.db.dispose()


def test_daily_housekeeping_forgets_counters_weeks_later(runtime: HubRuntime) -> None:
    """The worker's daily purge asks the limiter to forget counters and parcel statuses that
    nobody touched for LEDGER_RETENTION; fresh ones stay."""
    from throttling.ledger import LEDGER_RETENTION

    with client_for(runtime) as client:
        post(client, "evt-delivered", "parcel.delivered")
        drain(runtime)
    limiter = runtime.pipeline.stages.limiter
    assert limiter.purge(datetime.now(UTC)) == 0  # everything is fresh
    later = datetime.now(UTC) + LEDGER_RETENTION + timedelta(days=1)
    assert limiter.purge(later) >= 2  # the SMS hit and the parcel's last status
    assert limiter.purge(later) == 0
