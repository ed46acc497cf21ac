"""A 60 s provider outage against a separate worker process: the circuit opens, messages wait
(without burning their attempts), and all go out exactly once after recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub import migrate
from hub.db import Database
from hub.events import EventIn
from hub.intake import accept
from hub.models import OutboxJob
from tests.fakes.twilio import FakeTwilio
from tests.helpers import event

pytestmark = pytest.mark.slow
OUTAGE = float(os.environ.get("HUB_TEST_OUTAGE_SECONDS", "60"))
EVENTS = 30


def test_sixty_second_provider_outage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = Database(url)
    migrate.upgrade(db)
    with FakeTwilio() as fake:
        env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_LOG_LEVEL": "ERROR",
               "HUB_TWILIO_ACCOUNT_SID": fake.account_sid, "HUB_TWILIO_AUTH_TOKEN": fake.auth_token,
               "HUB_TWILIO_FROM": "+48500000000", "HUB_TWILIO_API_BASE_URL": fake.url,
               "HUB_BREAKER_THRESHOLD": "3", "HUB_BREAKER_COOLDOWN_SECONDS": "2",
               "HUB_BREAKER_MAX_COOLDOWN_SECONDS": "8", "HUB_MAX_ATTEMPTS": "8",
               "HUB_RETRY_BASE_SECONDS": "0.5", "HUB_RETRY_MAX_SECONDS": "5",
               "HUB_WORKER_POLL_SECONDS": "0.1"}
        fake.faults.for_seconds(OUTAGE, status=500)
        worker = subprocess.Popen([sys.executable, "-m", "hub", "worker", "--threads", "2"],
                                  env=env, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            for i in range(EVENTS):  # a stream across the outage
                body = event(f"evt-{i}", customer={"id": f"c-{i}", "phone": f"+4851250{i:04d}"})
                accept(db, "p", [EventIn.model_validate(body)])
                time.sleep(OUTAGE / EVENTS / 2)
            deadline = started + OUTAGE + 60
            while len(fake.by_key) < EVENTS and time.monotonic() < deadline:
                time.sleep(0.5)
            recovered_after = time.monotonic() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        with db.sessions() as s:
            attempts = s.scalar(select(func.max(OutboxJob.attempts))) or 0
            dead = s.scalar(select(func.count()).select_from(OutboxJob)
                            .where(OutboxJob.state == "dead")) or 0
    print(f"\noutage={OUTAGE:.0f}s events={EVENTS} failures_at_fake={fake.faults.injected} "
          f"delivered={len(fake.by_key)} duplicates={sum(v - 1 for v in fake.by_key.values())} "
          f"max_attempts_used={attempts} dead={dead} all_out_after={recovered_after:.0f}s")
    assert len(fake.by_key) == EVENTS and set(fake.by_key.values()) == {1}
    assert dead == 0
    # the breaker held the messages back: far fewer provider calls than messages × attempts
    assert fake.faults.injected < EVENTS
    assert attempts < 8
    db.dispose()
