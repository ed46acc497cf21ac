"""kill -9 of the worker process around the moment a reminder fires: exactly one reminder
event and one message, whichever side of the firing commit the process dies on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hub import migrate
from hub.db import Database, utcnow
from hub.events import EventIn
from hub.followups.firing import FIRED, FIRING, PRODUCER
from hub.intake import accept
from hub.models import Event, FollowupTimer, OutboxJob
from tests.helpers import event, read_outbox

pytestmark = pytest.mark.slow


def _run_worker(env: dict[str, str], seconds: float) -> int | None:
    """Runs `hub worker` until it dies (returns its code) or `seconds` pass (SIGTERM)."""
    proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=30)
        return None


@pytest.mark.parametrize("point", [FIRING, FIRED])
def test_kill_9_around_the_firing_sends_exactly_one_reminder(
    database_url: str, tmp_path: Path, point: str
) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    deadline = utcnow() + timedelta(hours=24, seconds=2)  # the −24 h reminder is due in 2 s
    body = event("evt-1", occurred_at=utcnow().isoformat())
    body["parcel"]["pickup_point"]["deadline"] = deadline.isoformat()
    accept(db, "p", [EventIn.model_validate(body)])
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_LOG_LEVEL": "ERROR",
           "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
           "HUB_WORKER_POLL_SECONDS": "0.05", "HUB_WORKER_LEASE_SECONDS": "0.5",
           "HUB_FOLLOWUP_POLL_SECONDS": "0.1", "HUB_THROTTLE_BACKEND": "off"}
    time.sleep(2.2)
    assert _run_worker({**env, "HUB_FAILPOINT": point}, 20) == -9  # died at the point
    time.sleep(0.6)  # the dead process's lease expires
    restarted = subprocess.Popen([sys.executable, "-m", "hub", "worker"],
                                 env={**env, "HUB_FAILPOINT": ""}, stderr=subprocess.DEVNULL)
    try:  # until both jobs (the event's and the reminder's) are done, then 1 s more
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and restarted.poll() is None:
            with db.sessions() as s:
                states = s.scalars(select(OutboxJob.state)).all()
            if len(states) == 2 and set(states) == {"done"}:
                time.sleep(1.0)  # a second reminder or message would show up by now
                break
            time.sleep(0.2)
    finally:
        alive = restarted.poll() is None
        restarted.terminate()
        restarted.wait(timeout=30)
    assert alive  # ran until stopped
    with db.sessions() as s:
        fired = s.scalars(select(Event).where(Event.producer == PRODUCER)).all()
        timer = s.scalars(select(FollowupTimer).where(FollowupTimer.offset == "-24h")).one()
        jobs = s.scalars(select(OutboxJob.state)).all()
    sent = [m for m in read_outbox(tmp_path / "outbox.jsonl")
            if "Przypominamy" in m["parts"]["body"]]
    assert [e.event_id for e in fired] == [f"pickup_reminder:{timer.trigger_event_pk}:-24h"]
    assert timer.state == "fired" and timer.fired_event_pk == fired[0].id
    assert set(jobs) == {"done"} and len(jobs) == 2
    assert len(sent) == 1, sent
    db.dispose()
