"""A campaign over 10,000 customers on SQLite: the split, consent, quiet hours and caps,
then clicks and conversions in the report equal direct counts in the store."""

from __future__ import annotations

import collections
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from hub.campaigns.assignment import assign
from hub.campaigns.runner import CampaignLoop
from hub.db import utcnow
from hub.models import (
    Campaign,
    CampaignRecipient,
    Customer,
    Decision,
    Notification,
    OutboxJob,
)
from hub.runtime import HubRuntime
from hub.worker import Worker
from tests.helpers import make_runtime
from tests.hub.campaigns.builders import add_audience, add_customers, campaign_body

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WARSAW = ZoneInfo("Europe/Warsaw")
N = 10_000


def _tonight() -> tuple[datetime, datetime]:
    """23:30 in Warsaw still ahead of the real clock, and 10:00 the morning after: the
    limiter sees these; the outbox keeps the real clock, so a job deferred to 08:00 waits
    until the test lets it go."""
    day = utcnow().astimezone(WARSAW).date() + timedelta(days=1)
    night = datetime.combine(day, time(23, 30), WARSAW)
    return night.astimezone(UTC), (night + timedelta(hours=10, minutes=30)).astimezone(UTC)


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> HubRuntime:
    rt = make_runtime(database_url, tmp_path, throttle_backend="sql", worker_batch=200)
    return rt


def run_campaign(client: TestClient, runtime: HubRuntime, body: dict[str, Any]) -> int:
    created = client.post("/v1/campaigns", json=body).json()
    assert client.post(f"/v1/campaigns/{created['id']}/start").status_code == 200
    loop = CampaignLoop(runtime.db)
    while loop.run_once():
        pass
    assert client.get(f"/v1/campaigns/{created['id']}").json()["state"] == "completed"
    return int(created["id"])


def _drain_at(runtime: HubRuntime, monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """Runs every waiting job with the limiter's clock at `when` (quiet hours, caps)."""
    monkeypatch.setattr("hub.pipeline.utcnow", lambda: when)
    with runtime.db.transaction() as s:
        s.execute(update(OutboxJob).where(OutboxJob.state == "pending")
                  .values(not_before=utcnow()))
    Worker(runtime.db, runtime.pipeline, runtime.settings).drain(timeout=120)


def _outcomes(runtime: HubRuntime, campaign_id: int) -> dict[tuple[str, str], int]:
    """(outcome, reason) of each campaign event's e-mail decision → count."""
    with runtime.db.sessions() as s:
        rows = s.execute(select(Decision.outcome, Decision.reason, func.count())
                         .join(CampaignRecipient, CampaignRecipient.event_pk == Decision.event_pk)
                         .where(CampaignRecipient.campaign_id == campaign_id,
                                Decision.channel == "email")
                         .group_by(Decision.outcome, Decision.reason)).all()
    return {(o, r): n for o, r, n in rows}


def test_ten_thousand_split_consent_quiet_hours_and_caps(
        runtime: HubRuntime, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    add_customers(runtime.db, N, consent=lambda i: i % 2 == 0)
    audience = add_audience(runtime.db)
    first = run_campaign(client, runtime, campaign_body(audience))
    with runtime.db.sessions() as s:
        campaign = s.get(Campaign, first)
        assert campaign is not None
        groups = collections.Counter(s.scalars(select(CampaignRecipient.variant)
                                               .where(CampaignRecipient.campaign_id == first)))
        # deterministic: the stored variant is the hash's, whatever order it was walked in
        sample = s.execute(select(Customer.external_id, CampaignRecipient.variant)
                           .join(Customer, Customer.id == CampaignRecipient.customer_pk)
                           .limit(500)).all()
        assert all(assign(campaign.seed, first, key, [("a", 50), ("b", 50)], 10) == v
                   for key, v in sample)
    assert sum(groups.values()) == N
    assert abs(groups["holdout"] / N - 0.10) <= 0.02
    assert abs(groups["a"] / N - 0.45) <= 0.02 and abs(groups["b"] / N - 0.45) <= 0.02

    night_at, morning_at = _tonight()
    _drain_at(runtime, monkeypatch, night_at)  # 23:30 in Warsaw: quiet hours
    with runtime.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 0
    night = _outcomes(runtime, first)
    queued = groups["a"] + groups["b"]
    assert night[("deferred", "quiet_hours")] + night[("skipped", "no_consent")] == queued

    _drain_at(runtime, monkeypatch, morning_at)
    morning = _outcomes(runtime, first)
    assert morning[("sent", "sent")] == night[("deferred", "quiet_hours")]
    with runtime.db.sessions() as s:  # only consented customers, once each
        sent_to = s.scalars(select(Notification.customer_id)).all()
    assert len(sent_to) == len(set(sent_to)) == morning[("sent", "sent")]
    assert all(int(c.removeprefix("c")) % 2 == 0 for c in sent_to)

    second = run_campaign(client, runtime, campaign_body(audience, name="Again"))
    _drain_at(runtime, monkeypatch, morning_at + timedelta(hours=1))  # within marketing_4h
    again = _outcomes(runtime, second)
    assert again[("dropped", "cap_exceeded:marketing_4h")] > 0
    with runtime.db.sessions() as s:  # only those the first campaign held out got one now
        customers = s.execute(select(Notification.customer_id, func.count())
                              .group_by(Notification.customer_id)).all()
        held_out = set(s.scalars(select(Customer.external_id)
                                 .join(CampaignRecipient,
                                       CampaignRecipient.customer_pk == Customer.id)
                                 .where(CampaignRecipient.campaign_id == first,
                                        CampaignRecipient.variant == "holdout")))
    assert all(n == 1 for _, n in customers)
    assert {c for c, _ in customers} - set(sent_to) <= held_out
    assert len(customers) == len(sent_to) + again.get(("sent", "sent"), 0)

