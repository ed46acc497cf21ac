"""SIGTERM to a worker with 64 sends in flight: every send in hand finishes and is recorded,
the jobs it never started stay unleased with no attempt spent, and nothing is lost or
repeated after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub import migrate
from hub.db import Database
from hub.events import EventIn
from hub.intake import accept
from hub.models import Notification, OutboxJob
from tests.fakes.twilio import FakeTwilio
from tests.helpers import event

pytestmark = pytest.mark.slow
EVENTS = 100
CONCURRENCY = 64


class SlowTwilio(FakeTwilio):
    """Accepts every message, but only after `delay` seconds."""

    delay = 1.5

    def handle(self, req: Any) -> Any:
        time.sleep(self.delay)
        return super().handle(req)


def test_sigterm_finishes_the_send_in_hand_and_hands_back_the_rest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = Database(url)
    migrate.upgrade(db)
    accept(db, "p", [EventIn.model_validate(event(f"evt-{i}", customer={
        "id": f"c-{i}", "phone": f"+4851260{i:04d}"})) for i in range(EVENTS)])
    with SlowTwilio() as fake:
        env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_LOG_LEVEL": "ERROR",
               "HUB_TWILIO_ACCOUNT_SID": fake.account_sid, "HUB_TWILIO_AUTH_TOKEN": fake.auth_token,
               "HUB_TWILIO_FROM": "+48500000000", "HUB_TWILIO_API_BASE_URL": fake.url,
               "HUB_WORKER_BATCH": "20", "HUB_WORKER_LEASE_SECONDS": "300",
               "HUB_SEND_CONCURRENCY": str(CONCURRENCY)}
        worker = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env)
        deadline = time.monotonic() + 30
        while fake.requests < CONCURRENCY and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.requests == CONCURRENCY  # a full engine: 64 sends in the provider's hands
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        with db.sessions() as s:
            records = s.scalars(select(Notification)).all()
            jobs = s.scalars(select(OutboxJob).order_by(OutboxJob.id)).all()
        # every send in hand completed and was recorded; nothing is left half-sent
        assert {(n.status, n.provider_message_id is not None) for n in records} == {("sent", True)}
        assert len(records) == CONCURRENCY
        done = [j for j in jobs if j.state == "done"]
        assert len(done) == CONCURRENCY
        # the rest were never started: pending, no lease held, no attempt spent
        assert {(j.state, j.lease_owner, j.attempts) for j in jobs if j.state != "done"} == {
            ("pending", None, 0)}
        fake.delay = 0.0
        restarted = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env)
        deadline = time.monotonic() + 60
        while len(fake.by_key) < EVENTS and time.monotonic() < deadline:
            time.sleep(0.1)
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0
    assert len(fake.by_key) == EVENTS and set(fake.by_key.values()) == {1}
    db.dispose()
