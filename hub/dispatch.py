"""Delivery on dramatiq (scale-out mode): an outbox relay publishes ready jobs to the broker and
dramatiq actors hand them to the process's delivery engine, the one the embedded worker uses.

The outbox stays the source of truth. The relay leases a job before publishing it (without
counting an attempt: nothing ran yet), so a message the broker loses is published again when
that lease expires; an actor takes the lease over from the relay before running the job, and
only if the job is due, so a message delivered twice runs once and a redelivered message
never runs a postponed job early. Each lane has its own queue and actor priority, so urgent
notices overtake a marketing backlog in the broker too. Retries of transient provider errors
stay in the outbox, durable across broker restarts.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import cast

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy.orm import Session

from hub.db import Database, utcnow
from hub.engine import Engine
from hub.gdpr import DailyPurge
from hub.grouping import Grouped
from hub.lanes import LANE_ORDER, Lane
from hub.leadership import Leadership
from hub.logs import get_logger
from hub.models import OutboxJob
from hub.outbox_signal import OutboxWakeups
from hub.pipeline import Pipeline
from hub.settings import Settings
from hub.worker import claim_by_lane

RELAY_PREFIX = "relay:"
RELAY_LEASE_SECONDS = 5.0  # a dead relay's successor starts within this (plus a second)
PRIORITY = {Lane.URGENT: 0, Lane.NORMAL: 10, Lane.BULK: 20}  # lower runs first in a worker
log = get_logger("dispatch")


def make_broker(url: str) -> dramatiq.Broker:
    """A RabbitMQ (`amqp://`) or Redis (`redis://`) broker with publisher confirms."""
    if url.startswith(("amqp://", "amqps://")):
        return RabbitmqBroker(url=url, confirm_delivery=True)
    if url.startswith(("redis://", "rediss://")):
        return RedisBroker(url=url)
    raise ValueError(f"HUB_BROKER_URL must start with amqp:// or redis://, got {url.split(':')[0]}://")


def queue_name(base: str, lane: Lane) -> str:
    """The broker queue of a lane (the normal lane keeps the configured name)."""
    return base if lane is Lane.NORMAL else f"{base}.{lane}"


def take_over(session: Session, job_ids: list[int], owner: str, lease_seconds: float
              ) -> list[int]:
    """Moves published jobs' leases from the relay to `owner` and counts their attempt; only
    jobs that are due and not run by someone else. Returns the ids taken. Runs in the
    engine's load transaction (`Engine.submit(take=...)`): one commit for both."""
    now = utcnow()
    taken = session.connection().scalars(_TAKE_OVER, {
        "b_ids": job_ids, "b_now": now, "b_owner": owner,
        "b_until": now + timedelta(seconds=lease_seconds), "b_relays": f"{RELAY_PREFIX}%"})
    return sorted(taken)


_JOBS = cast(Table, OutboxJob.__table__).c
_TAKE_OVER = (  # built once: every message runs it
    update(OutboxJob.__table__)
    .where(_JOBS.id.in_(bindparam("b_ids", expanding=True)), _JOBS.state == "pending",
           _JOBS.not_before <= bindparam("b_now"),  # a redelivered message never runs a job early
           or_(_JOBS.lease_owner.like(bindparam("b_relays")), _JOBS.lease_until < bindparam("b_now"),
               _JOBS.lease_owner.is_(None)))
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"),
            attempts=_JOBS.attempts + 1)
    .returning(_JOBS.id))


class Dispatcher:
    """Binds one actor per lane and the relay to a store, an engine and a broker."""

    def __init__(self, db: Database, pipeline: Pipeline, settings: Settings,
                 broker: dramatiq.Broker, housekeeping: Callable[[], None] | None = None) -> None:
        self.db, self.pipeline, self.settings, self.broker = db, pipeline, settings, broker
        self.housekeeping = housekeeping or pipeline.housekeeping
        self.actors = {lane: dramatiq.actor(
            self._process, broker=broker, actor_name=f"hub.process_jobs.{lane}",
            queue_name=queue_name(settings.broker_queue, lane), priority=PRIORITY[lane],
            max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=300_000,
            max_age=24 * 3600 * 1000) for lane in LANE_ORDER}
        self.queues = {queue_name(settings.broker_queue, lane) for lane in LANE_ORDER}
        self.relay_name = f"{RELAY_PREFIX}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._engine: Engine | None = None
        self._submit = Grouped(self._submit_group, size=len, max_size=settings.send_concurrency)
        self._engine_lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def engine(self) -> Engine:
        """This process's engine, started by the first message."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = Engine(self.db, self.pipeline, self.settings, self.worker_name)
            return self._engine

    def _process(self, job_ids: list[int]) -> None:
        """Takes the jobs over and hands them to the engine once it has room; the outbox
        lease (extended while in flight) protects them from here on, not the message."""
        engine = self.engine
        for _ in range(600):  # bounded: at most ~5 minutes (the actor's time limit)
            if engine.wait_for_capacity(0.5, at_least=len(job_ids)) >= 1:
                break
        self._submit(job_ids)

    def _submit_group(self, messages: list[list[int]]) -> None:
        """The jobs of every message that arrived while the previous group was loading, in
        one load transaction (`hub.grouping`): under load, fewer transactions per job."""
        engine = self.engine
        batch = engine.submit([i for ids in messages for i in ids], take=partial(
            take_over, owner=engine.owner, lease_seconds=self.settings.worker_lease_seconds))
        if batch.not_taken:
            log.info("jobs_taken_elsewhere_or_not_due", jobs=batch.not_taken)

    def relay_once(self) -> int:
        """Publishes every ready job once, in batches per lane; returns how many."""
        by_lane = claim_by_lane(self.db, self.relay_name, 500, self.settings.worker_lease_seconds,
                                count_attempt=False)
        size = max(1, self.settings.worker_batch)
        unsent = [i for lane in LANE_ORDER for i in by_lane.get(lane, [])]
        try:
            for lane in LANE_ORDER:
                chunk = by_lane.get(lane, [])
                for start in range(0, len(chunk), size):
                    part = chunk[start:start + size]
                    self.actors[lane].send(part)
                    del unsent[:len(part)]
        except Exception:
            # Not published: let them go now rather than at the end of their lease, so the
            # relay that takes over (this one may be cut off from the broker) sends them at
            # once. A message that reached the broker anyway is harmless: it runs once.
            self._unlease(unsent)
            raise
        return sum(len(chunk) for chunk in by_lane.values())

    def _unlease(self, job_ids: list[int]) -> None:
        """Gives back jobs this relay leased and did not publish (no attempt was counted)."""
        try:
            with self.db.transaction() as session:
                session.execute(update(OutboxJob)
                                .where(OutboxJob.id.in_(job_ids),
                                       OutboxJob.lease_owner == self.relay_name)
                                .values(lease_owner=None, lease_until=None))
        except Exception:  # the store is away too: the leases expire instead
            log.exception("relay_unlease_error", jobs=len(job_ids))

    def relay_forever(self) -> None:
        """Relays while this process holds the relay lease (one relay polls the outbox at a
        time, `hub.leadership`); the others stand by and take over when it goes."""
        daily_purge = DailyPurge(self.db, self.settings, housekeeping=self.housekeeping)
        lease = min(RELAY_LEASE_SECONDS, self.settings.worker_lease_seconds)
        leadership = Leadership(self.db, "outbox-relay", self.relay_name, lease,
                                standby_seconds=min(1.0, lease))
        failing_since: float | None = None
        wakeups = OutboxWakeups(self.db.url)
        while not self._stop.is_set():
            daily_purge.run_if_due()
            if not leadership.held():
                self._stop.wait(leadership.standby_seconds)
                continue
            try:
                published = self.relay_once()
                if published:  # a pass with nothing to publish says nothing of the broker
                    failing_since = None
            except Exception:
                log.exception("relay_error")  # broker or store down: try again shortly
                published = 0
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= lease:
                    # Failing for a whole lease (this host cannot reach the broker, say):
                    # renewing the lease would keep every healthy process from relaying.
                    log.warning("relay_stepping_down", relay=self.relay_name)
                    leadership.step_down(3 * lease)
                    failing_since = None
            if not published:  # until the next poll, or intake announcing new jobs
                wakeups.wait(self.settings.worker_poll_seconds, self._stop)
        wakeups.close()
        leadership.release()

    def start_relay(self) -> threading.Thread:
        thread = threading.Thread(target=self.relay_forever, name="hub-relay", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def close_engine(self, timeout: float = 60.0) -> None:
        """After the consumer stopped: the jobs in hand finish and are recorded."""
        if self._engine is not None:
            self._engine.close(timeout)
