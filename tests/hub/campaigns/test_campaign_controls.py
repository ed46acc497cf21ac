"""The runner obeys the send rate, a pause and a cancel; a local-time campaign waits for
each customer's own morning."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.campaigns.runner import CampaignLoop
from hub.db import utcnow
from hub.models import CampaignRecipient, Decision, OutboxJob
from hub.runtime import HubRuntime
from tests.hub.campaigns.builders import add_audience, add_customers, campaign_body

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def _queued(runtime: HubRuntime) -> int:
    with runtime.db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(CampaignRecipient)
                            .where(CampaignRecipient.state == "queued")) or 0)


def _started(client: TestClient, runtime: HubRuntime, **over: object) -> str:
    add_customers(runtime.db, 50)
    created = client.post("/v1/campaigns", json=campaign_body(add_audience(runtime.db),
                                                              holdout_percent=0, **over))
    assert created.status_code == 201, created.text
    path = f"/v1/campaigns/{created.json()['id']}"
    assert client.post(f"{path}/start").status_code == 200
    return path


def test_send_rate_pause_resume(runtime: HubRuntime, client: TestClient) -> None:
    path = _started(client, runtime, send_rate=5)
    clock = Clock()
    loop = CampaignLoop(runtime.db, clock=clock)
    loop.run_once()  # starts it and assigns everyone; no time has passed: nothing queued
    assert _queued(runtime) == 0 and client.get(path).json()["state"] == "running"
    clock.now += timedelta(seconds=1)
    loop.run_once()
    assert _queued(runtime) == 5
    loop.run_once()  # the same second: the rate is spent
    assert _queued(runtime) == 5
    clock.now += timedelta(seconds=60)  # a long gap is no licence for a burst
    loop.run_once()
    assert _queued(runtime) == 15
    assert client.post(f"{path}/pause").json()["state"] == "paused"
    clock.now += timedelta(seconds=2)
    loop.run_once()
    assert _queued(runtime) == 15
    assert client.post(f"{path}/resume").json()["state"] == "running"
    loop.run_once()
    assert _queued(runtime) == 25


def test_cancel_stops_queued_jobs_and_unqueued_recipients(
        runtime: HubRuntime, client: TestClient) -> None:
    path = _started(client, runtime, send_rate=10)
    clock = Clock()
    loop = CampaignLoop(runtime.db, clock=clock)
    loop.run_once()
    clock.now += timedelta(seconds=1)
    loop.run_once()
    assert _queued(runtime) == 10
    cancelled = client.post(f"{path}/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["actions"] == []
    with runtime.db.sessions() as s:
        states = dict(s.execute(select(CampaignRecipient.state, func.count())
                                .group_by(CampaignRecipient.state)).tuples().all())
        reasons = s.scalars(select(Decision.reason)).all()
        pending = s.scalar(select(func.count()).select_from(OutboxJob)
                           .where(OutboxJob.state == "pending"))
    assert states == {"queued": 10, "cancelled": 40}
    assert reasons == ["campaign_cancelled"] * 10 and pending == 0
    clock.now += timedelta(seconds=5)
    assert loop.run_once() == 0  # nothing more is queued


def test_local_time_waits_for_each_customers_morning(
        runtime: HubRuntime, client: TestClient) -> None:
    path = _started(client, runtime, schedule={"kind": "local_time", "local_time": "10:00"})
    clock = Clock()
    loop = CampaignLoop(runtime.db, clock=clock)
    loop.run_once()
    with runtime.db.sessions() as s:
        due = set(s.scalars(select(CampaignRecipient.send_at)))
    assert len(due) == 1  # everyone in Warsaw: one instant, the next 10:00 there
    (at,) = due
    assert timedelta(0) <= at - clock.now <= timedelta(days=1)
    assert _queued(runtime) == (50 if at <= clock.now else 0)
    clock.now = at
    loop.run_once()
    assert _queued(runtime) == 50 and client.get(path).json()["state"] == "completed"


def test_a_pass_that_exhausts_the_audience_completes_the_campaign(
        runtime: HubRuntime, client: TestClient) -> None:
    """One pass assigns and queues everyone, finds the audience exhausted and completes: a
    pass that returns nothing queued never leaves the campaign running with nothing left."""
    path = _started(client, runtime)
    loop = CampaignLoop(runtime.db)
    assert loop.run_once() == 50
    assert client.get(path).json()["state"] == "completed"
    assert loop.run_once() == 0
