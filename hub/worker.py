"""The outbox worker: claims jobs under a lease, lane by lane, and feeds the delivery engine."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Integer, Table, bindparam, func, or_, select, union_all, update
from sqlalchemy.orm import Session

from hub.alerts import OpsAlerts
from hub.db import Database, utcnow
from hub.engine import Batch, Engine
from hub.gdpr import DailyPurge
from hub.lanes import LANE_ORDER, Lane, shares
from hub.logs import get_logger
from hub.metrics import LANE_AGE, LANE_DEPTH, QUEUE_DEPTH, QUEUE_LAG
from hub.models import OutboxJob
from hub.outcomes import backoff
from hub.pipeline import Pipeline
from hub.settings import Settings

__all__ = ["Worker", "backoff", "claim", "claim_by_lane", "claim_in", "in_lane_order",
           "refresh_queue_metrics", "release"]
log = get_logger("worker")


def claim(db: Database, owner: str, limit: int, lease_seconds: float,
          count_attempt: bool = True) -> list[int]:
    """Leases up to `limit` ready jobs to `owner`, urgent lane first with a fair share for
    the others; no two live workers ever hold the same job. `count_attempt=False` for the
    relay, which only publishes: an attempt is counted when a job really runs."""
    return in_lane_order(claim_by_lane(db, owner, limit, lease_seconds, count_attempt))


def in_lane_order(by_lane: dict[Lane, list[int]]) -> list[int]:
    """Claimed ids with urgent work first."""
    return [i for lane in LANE_ORDER for i in by_lane.get(lane, [])]


def claim_by_lane(db: Database, owner: str, limit: int, lease_seconds: float,
                  count_attempt: bool = True) -> dict[Lane, list[int]]:
    """`claim`, with the ids grouped by lane (the relay publishes each lane to its queue)."""
    with db.transaction() as session:
        return claim_in(session, owner, limit, lease_seconds, count_attempt)


def claim_in(session: Session, owner: str, limit: int, lease_seconds: float,
             count_attempt: bool = True) -> dict[Lane, list[int]]:
    """`claim_by_lane` in the caller's transaction (the embedded worker claims in the
    engine's load transaction: one commit for both)."""
    now = utcnow()
    conn = session.connection()
    ready: dict[Lane, list[int]] = {lane: [] for lane in LANE_ORDER}
    for row in sorted(conn.execute(_READY_LOCKED if conn.dialect.name == "postgresql" else _READY,
                                   {"b_now": now, "b_limit": limit}),
                      key=lambda r: (r.not_before, r.id)):  # each lane oldest first
        ready[Lane(row.lane)].append(row.id)
    ids = shares(limit, ready)
    if not ids:
        return {}
    # The WHERE is re-checked on the row itself, so a concurrent claimer that got there
    # first makes this UPDATE skip the row (PostgreSQL re-evaluates; SQLite serialises).
    claimed = set(conn.scalars(_LEASE_COUNTING if count_attempt else _LEASE, {
        "b_ids": ids, "b_now": now, "b_owner": owner,
        "b_until": now + timedelta(seconds=lease_seconds)}))
    picked = set(ids)
    return {lane: [i for i in ready[lane] if i in picked and i in claimed]
            for lane in LANE_ORDER}


# The claim's statements, built once: the relay and the embedded worker claim many times a
# second, and building a statement costs more than running it.
_JOBS = cast(Table, OutboxJob.__table__).c
_FREE = or_(_JOBS.lease_until.is_(None), _JOBS.lease_until < bindparam("b_now"))


def _ready(locked: bool) -> Any:
    """The oldest ready jobs of every lane (up to `b_limit` each), in one round trip."""
    lanes = []
    for lane in LANE_ORDER:
        oldest = (select(_JOBS.id, _JOBS.lane, _JOBS.not_before)
                  .where(_JOBS.state == "pending", _JOBS.lane == str(lane),
                         _JOBS.not_before <= bindparam("b_now"), _FREE)
                  .order_by(_JOBS.not_before, _JOBS.id)
                  .limit(bindparam("b_limit", type_=Integer)))
        if locked:  # on PostgreSQL: rows another claimer is leasing are passed over
            oldest = oldest.with_for_update(skip_locked=True)
        subquery = oldest.subquery(f"ready_{lane}")
        lanes.append(select(subquery.c.id, subquery.c.lane, subquery.c.not_before))
    return union_all(*lanes)


_READY, _READY_LOCKED = _ready(locked=False), _ready(locked=True)
_LEASE = (update(OutboxJob.__table__)
          .where(_JOBS.id.in_(bindparam("b_ids", expanding=True)), _JOBS.state == "pending", _FREE)
          .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
          .returning(_JOBS.id))
_LEASE_COUNTING = _LEASE.values(attempts=_JOBS.attempts + 1)


def release(db: Database, owner: str, job_ids: list[int]) -> None:
    """Gives back leased jobs this worker will not start (graceful shutdown): other workers
    may take them at once instead of waiting for the lease to expire."""
    with db.transaction() as session:
        session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_(job_ids), OutboxJob.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, attempts=OutboxJob.attempts - 1)
        )


def refresh_queue_metrics(db: Database) -> None:
    """Updates the queue depth and age gauges (overall and per lane) from the store."""
    now = utcnow()
    with db.sessions() as session:
        depth, oldest = session.execute(
            select(func.count(), func.min(OutboxJob.not_before)).where(
                OutboxJob.state == "pending")).one()
        lanes = session.execute(
            select(OutboxJob.lane, func.count(), func.min(OutboxJob.not_before))
            .where(OutboxJob.state == "pending", OutboxJob.not_before <= now)
            .group_by(OutboxJob.lane)).all()
    QUEUE_DEPTH.set(depth)
    QUEUE_LAG.set(_age(now, oldest))
    seen = {lane: (count, first) for lane, count, first in lanes}
    for lane in LANE_ORDER:
        count, first = seen.get(str(lane), (0, None))
        LANE_DEPTH.labels(str(lane)).set(count)
        LANE_AGE.labels(str(lane)).set(_age(now, first))


def _age(now: object, oldest: object) -> float:
    from datetime import datetime

    if not isinstance(oldest, datetime) or not isinstance(now, datetime):
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - oldest).total_seconds())


class Worker:
    """Polls the outbox and keeps the engine's capacity busy."""

    def __init__(self, db: Database, pipeline: Pipeline, settings: Settings,
                 alerts: OpsAlerts | None = None) -> None:
        if pipeline.alerts is None:
            pipeline.alerts = alerts if alerts is not None else OpsAlerts.from_settings(settings)
        self.db = db
        self.pipeline = pipeline
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._engine: Engine | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        # GDPR retention and the limiter's old counters: at start, then daily
        self.daily_purge = DailyPurge(db, settings, housekeeping=pipeline.housekeeping)

    @property
    def engine(self) -> Engine:
        """Started on first use (a worker built only for its daily purge starts no threads)."""
        if self._engine is None:
            self._engine = Engine(self.db, self.pipeline, self.settings, self.name)
        return self._engine

    def _claim_and_submit(self, limit: int) -> Batch:
        """Claims up to `limit` jobs, urgent lane first, in the engine's load transaction."""
        return self.engine.claim_and_submit(lambda session: in_lane_order(
            claim_in(session, self.name, limit, self.settings.worker_lease_seconds)))

    def run_once(self) -> int:
        """Claims one batch and waits until it is finished; returns how many jobs it ran."""
        batch = self._claim_and_submit(min(self.settings.worker_batch, self.engine.free()))
        batch.wait(timeout=max(60.0, 3 * self.settings.provider_timeout_seconds))
        return batch.size

    def drain(self, timeout: float = 30.0) -> None:
        """Runs until no job is ready (tests and the demo)."""
        deadline = utcnow() + timedelta(seconds=timeout)
        while self.run_once() and utcnow() < deadline:
            pass

    def run_forever(self) -> None:
        """Claims whenever the engine has room, without waiting for slow calls to finish."""
        log.info("worker_started", worker=self.name, concurrency=self.settings.send_concurrency)
        engine = self.engine
        # claim in groups of at least a quarter of the engine (or a full batch), not one by one
        group = min(self.settings.worker_batch, max(1, self.settings.send_concurrency // 4))
        while not self._stop.is_set():
            self.daily_purge.run_if_due()
            free = engine.wait_for_capacity(self.settings.worker_poll_seconds, at_least=group)
            if free < 1:
                continue
            try:
                claimed = self._claim_and_submit(min(self.settings.worker_batch, free)).size
            except Exception:
                log.exception("worker_loop_error")
                claimed = 0
            if not claimed:
                self._wake.wait(self.settings.worker_poll_seconds)
                self._wake.clear()
        engine.close()  # the calls in hand finish and are recorded
        log.info("worker_stopped", worker=self.name)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="hub-worker", daemon=True)
        thread.start()
        return thread
