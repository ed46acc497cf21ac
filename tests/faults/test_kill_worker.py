"""`kill -9` of a worker at every point of a send, 20+ times during a stream of events:
afterwards every accepted event is processed and the provider saw no message twice."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub import failpoints, migrate
from hub.db import Database
from hub.events import EventIn
from hub.intake import accept
from hub.models import Event, OutboxJob
from tests.helpers import event, read_outbox

pytestmark = pytest.mark.slow

POINTS = (failpoints.CLAIMED, failpoints.RENDERED, failpoints.BEFORE_SEND, failpoints.AFTER_SEND)
EVENTS = 120


def _unfinished(db: Database) -> int:
    with db.sessions() as s:
        return s.scalar(select(func.count()).select_from(OutboxJob)
                        .where(OutboxJob.state != "done")) or 0


def test_kill_9_at_every_point_loses_nothing_and_duplicates_nothing(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    accept(db, "p", [EventIn.model_validate(event(f"evt-{i}", customer={
        "id": f"c-{i}", "phone": f"+4851230{i:04d}"})) for i in range(EVENTS)])
    kills: collections.Counter[str] = collections.Counter()
    base_env = {**os.environ, "HUB_DATABASE_URL": database_url,
                "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
                "HUB_LOG_LEVEL": "ERROR", "HUB_WORKER_POLL_SECONDS": "0.05",
                "HUB_WORKER_LEASE_SECONDS": "0.5", "HUB_WORKER_BATCH": "3",
                "HUB_FAILPOINT_PROBABILITY": "0.3"}
    round_ = 0
    deadline = time.monotonic() + 240
    while _unfinished(db) and time.monotonic() < deadline:
        point = POINTS[round_ % len(POINTS)]
        round_ += 1
        # Once every point has killed 6 times, run without faults to finish the stream.
        armed = min(kills.values(), default=0) < 6 or len(kills) < len(POINTS)
        env = {**base_env, "HUB_FAILPOINT": point if armed else ""}
        proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env,
                                stderr=subprocess.PIPE)
        try:
            code = proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.terminate()
            code = proc.wait(timeout=30)
        if code == -9:
            kills[point] += 1
        time.sleep(0.6)  # let the dead worker's lease expire
    with db.sessions() as s:
        processed = s.scalar(select(func.count()).select_from(Event)
                             .where(Event.state == "processed"))
    sent = read_outbox(tmp_path / "outbox.jsonl")
    per_key = collections.Counter(m["id"] for m in sent)
    duplicates = sum(n - 1 for n in per_key.values())
    print(f"\nkills by point: {dict(kills)} (total {sum(kills.values())}); "
          f"accepted={EVENTS} processed={processed} sent={len(sent)} duplicates={duplicates}")
    assert sum(kills.values()) >= 20 and all(kills[p] >= 3 for p in POINTS)
    assert _unfinished(db) == 0
    assert processed == EVENTS
    assert duplicates == 0
    assert len(per_key) == EVENTS
    db.dispose()
