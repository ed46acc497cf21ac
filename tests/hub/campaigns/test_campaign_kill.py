"""kill -9 of the worker process while a campaign runs (after a chunk was assigned, and
after a chunk's events were accepted but before its recipients say so), then a restart:
nobody is assigned or sent to twice, and nobody moves between variants."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub import migrate
from hub.campaigns import store
from hub.campaigns.assignment import assign
from hub.campaigns.model import Action, CampaignIn
from hub.campaigns.runner import ASSIGNED, QUEUED
from hub.db import Database, utcnow
from hub.models import Campaign, CampaignRecipient, Customer, Event, Notification
from tests.hub.campaigns.builders import add_audience, add_customers, campaign_body

pytestmark = pytest.mark.slow
CUSTOMERS = 5_000  # three chunks of 2,000


def _worker(env: dict[str, str], seconds: float) -> int | None:
    """Runs `hub worker` until it dies (its code) or `seconds` pass (then SIGTERM)."""
    proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env,
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=60)
        return None


def _start_campaign(db: Database) -> int:
    public_id = add_audience(db)
    with db.transaction() as session:
        from hub.campaigns.audience import resolve

        found = resolve(session, "default", public_id)
        assert found is not None
        row = store.create(session, "default", "test", CampaignIn.model_validate(
            campaign_body(public_id)), found.id)
        campaign_id = row.id
    store.act(db, "default", campaign_id, Action.START, utcnow())
    return campaign_id


@pytest.mark.parametrize("point", [ASSIGNED, QUEUED])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_kill_9_mid_campaign_then_restart(database_url: str, tmp_path: Path, point: str) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    add_customers(db, CUSTOMERS)
    campaign_id = _start_campaign(db)
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_LOG_LEVEL": "ERROR",
           "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
           "HUB_WORKER_POLL_SECONDS": "0.05", "HUB_WORKER_LEASE_SECONDS": "0.5",
           "HUB_FOLLOWUP_POLL_SECONDS": "0.1", "HUB_THROTTLE_BACKEND": "off"}
    assert _worker({**env, "HUB_FAILPOINT": point}, 60) == -9  # died at the point
    with db.sessions() as s:
        before = dict(s.execute(select(CampaignRecipient.customer_pk, CampaignRecipient.variant)
                                .where(CampaignRecipient.campaign_id == campaign_id)).tuples().all())
    assert 0 < len(before) < CUSTOMERS or point == QUEUED
    time.sleep(0.6)  # the dead process's leases expire
    # one restart, left running until the campaign is done (each restart costs a start-up,
    # which on a loaded 2-core machine is most of a short run)
    restarted = subprocess.Popen([sys.executable, "-m", "hub", "worker"],
                                 env={**env, "HUB_FAILPOINT": ""},
                                 stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and restarted.poll() is None:
            with db.sessions() as s:
                campaign = s.get(Campaign, campaign_id)
                pending = s.scalar(select(func.count()).select_from(Event)
                                   .where(Event.state.in_(("accepted", "processing"))))
            assert campaign is not None
            if campaign.state == "completed" and not pending:
                break
            time.sleep(0.5)
    finally:
        restarted.terminate()
        restarted.wait(timeout=60)
    assert campaign.state == "completed" and not pending
    with db.sessions() as s:
        rows = s.execute(select(CampaignRecipient.customer_pk, CampaignRecipient.variant,
                                CampaignRecipient.event_pk, Customer.external_id)
                         .join(Customer, Customer.id == CampaignRecipient.customer_pk)
                         .where(CampaignRecipient.campaign_id == campaign_id)).all()
        events = s.scalar(select(func.count()).select_from(Event)
                          .where(Event.producer == "hub-campaigns"))
        per_customer = s.execute(select(Notification.customer_id, func.count())
                                 .group_by(Notification.customer_id)).all()
    assert len(rows) == CUSTOMERS  # everyone assigned once
    assert all(before[pk] == variant for pk, variant, _, _ in rows if pk in before)  # no move
    assert all(assign(campaign.seed, campaign_id, key, [("a", 50), ("b", 50)], 10) == variant
               for _, variant, _, key in rows)
    queued = [event_pk for _, variant, event_pk, _ in rows if variant != "holdout"]
    assert None not in queued and len(set(queued)) == len(queued) == events  # one event each
    assert all(n == 1 for _, n in per_customer) and len(per_customer) == len(queued)
