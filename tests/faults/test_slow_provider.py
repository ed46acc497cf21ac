"""Exactly once when the provider is slow: a call slower than the lease, with a second worker
waiting for the job, sends once; a provider that accepts and then times out is asked back or
left `unconfirmed`, never sent twice."""

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
from hub.models import Decision, Notification, OutboxJob
from hub.worker import Worker
from tests.channels.conftest import twilio_settings
from tests.fakes.twilio import FakeTwilio
from tests.helpers import event, make_runtime

pytestmark = pytest.mark.slow


class SlowTwilio(FakeTwilio):
    """Accepts every message, but answers only after `delay` seconds."""

    delay = 2.5

    def handle(self, req: Any) -> Any:
        reply = super().handle(req)  # recorded as accepted before the wait
        time.sleep(self.delay)
        return reply


def _events(count: int, tag: str) -> list[EventIn]:
    return [EventIn.model_validate(event(f"{tag}-{i}", customer={
        "id": f"{tag}-c{i}", "phone": f"+4851270{i:04d}"})) for i in range(count)]


def test_a_call_slower_than_the_lease_is_sent_once_with_two_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = Database(url)
    migrate.upgrade(db)
    accept(db, "p", _events(6, "slow"))
    with SlowTwilio() as fake:
        env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_LOG_LEVEL": "ERROR",
               **{f"HUB_{k.upper()}": str(v) for k, v in twilio_settings(fake).items()},
               "HUB_WORKER_LEASE_SECONDS": "1", "HUB_WORKER_POLL_SECONDS": "0.05",
               "HUB_PROVIDER_TIMEOUT_SECONDS": "10"}
        workers = [subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env)
                   for _ in range(2)]
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                with db.sessions() as s:
                    if not s.scalars(select(OutboxJob).where(OutboxJob.state != "done")).first():
                        break
                time.sleep(0.2)
            time.sleep(1.5)  # a second worker would have re-sent by now on the old code
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                assert proc.wait(timeout=60) == 0
    with db.sessions() as s:
        statuses = [n.status for n in s.scalars(select(Notification))]
    print(f"\nslow provider: events=6 provider_requests={fake.requests} "
          f"per_key={sorted(fake.by_key.values())}")
    assert len(fake.by_key) == 6 and set(fake.by_key.values()) == {1}
    assert statuses == ["sent"] * 6
    db.dispose()


def test_accepted_then_timed_out_is_never_sent_twice(database_url: str, tmp_path: Path) -> None:
    with SlowTwilio() as fake:
        fake.delay = 1.2  # longer than the client's timeout: the SDK raises a read timeout
        runtime = make_runtime(database_url, tmp_path, **twilio_settings(fake),
                               provider_timeout_seconds=0.4, max_attempts=5)
        accept(runtime.db, "p", _events(3, "late"))
        worker = Worker(runtime.db, runtime.pipeline, runtime.settings)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            worker.run_once()
            with runtime.db.sessions() as s:
                if not s.scalars(select(OutboxJob).where(OutboxJob.state == "pending")).first():
                    break
            time.sleep(0.1)
        with runtime.db.sessions() as s:
            notes = s.scalars(select(Notification)).all()
            sms = [(d.outcome, d.reason) for d in s.scalars(
                select(Decision).where(Decision.channel == "sms"))]
            jobs = s.scalars(select(OutboxJob)).all()
        worker.engine.close()
        runtime.stop()
    assert len(fake.by_key) == 3 and set(fake.by_key.values()) == {1}  # never two
    assert {n.status for n in notes} == {"unconfirmed"}  # Twilio cannot be asked by our key
    assert sms == [("sent", "send_unconfirmed")] * 3  # no retry, no fallback to e-mail
    assert {j.state for j in jobs} == {"done"}
