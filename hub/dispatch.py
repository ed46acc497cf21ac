"""Delivery on dramatiq (scale-out mode): an outbox relay publishes ready jobs to the broker and
dramatiq actors run the same pipeline the embedded worker runs.

The outbox stays the source of truth. The relay leases a job before publishing it, so a
message the broker loses is published again when that lease expires; an actor takes the
lease over from the relay before running the job, so a message delivered twice runs once.
Retries of transient provider errors stay in the outbox (`hub.worker.finish`), durable across
broker restarts; dramatiq's own Retries middleware covers an actor that crashes outright,
its TimeLimit and AgeLimit middleware bound a stuck or ancient message.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import or_, update

from hub.db import Database, utcnow
from hub.gdpr import DailyPurge
from hub.logs import get_logger
from hub.models import OutboxJob
from hub.worker import Worker, claim

if TYPE_CHECKING:
    from hub.runtime import HubRuntime

RELAY_PREFIX = "relay:"
log = get_logger("dispatch")


def make_broker(url: str) -> dramatiq.Broker:
    """A RabbitMQ (`amqp://`) or Redis (`redis://`) broker with publisher confirms."""
    if url.startswith(("amqp://", "amqps://")):
        return RabbitmqBroker(url=url, confirm_delivery=True)
    if url.startswith(("redis://", "rediss://")):
        return RedisBroker(url=url)
    raise ValueError(f"HUB_BROKER_URL must start with amqp:// or redis://, got {url.split(':')[0]}://")


def take_over(db: Database, job_id: int, owner: str, lease_seconds: float) -> bool:
    """Moves a published job's lease from the relay to an actor; False if someone else runs it."""
    now = utcnow()
    with db.transaction() as session:
        taken = session.execute(
            update(OutboxJob)
            .where(
                OutboxJob.id == job_id,
                OutboxJob.state == "pending",
                or_(OutboxJob.lease_owner.like(f"{RELAY_PREFIX}%"), OutboxJob.lease_until < now,
                    OutboxJob.lease_owner.is_(None)),
            )
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
        )
        return bool(taken.rowcount)


class Dispatcher:
    """Binds the `hub.process_job` actor and the relay to one runtime and broker."""

    def __init__(self, runtime: HubRuntime, broker: dramatiq.Broker) -> None:
        self.runtime = runtime
        self.broker = broker
        self.actor = dramatiq.actor(
            self._process, broker=broker, actor_name="hub.process_job",
            queue_name=runtime.settings.broker_queue,
            max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=300_000,
            max_age=24 * 3600 * 1000,
        )
        self.relay_name = f"{RELAY_PREFIX}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._stop = threading.Event()

    def _process(self, job_id: int) -> None:
        settings = self.runtime.settings
        worker = Worker(self.runtime.db, self.runtime.pipeline, settings)
        if not take_over(self.runtime.db, job_id, worker.name, settings.worker_lease_seconds):
            log.info("job_taken_elsewhere", job_id=job_id)
            return
        worker.run_job(job_id)

    def relay_once(self) -> int:
        """Publishes every ready job once; returns how many."""
        settings = self.runtime.settings
        ids = claim(self.runtime.db, self.relay_name, 200, settings.worker_lease_seconds)
        for job_id in ids:
            self.actor.send(job_id)
        return len(ids)

    def relay_forever(self) -> None:
        daily_purge = DailyPurge(self.runtime.db, self.runtime.settings,
                                 housekeeping=self.runtime.pipeline.housekeeping)
        while not self._stop.is_set():
            daily_purge.run_if_due()
            try:
                published = self.relay_once()
            except Exception:
                log.exception("relay_error")  # broker or store down: try again shortly
                published = 0
            if not published:
                self._stop.wait(self.runtime.settings.worker_poll_seconds)

    def start_relay(self) -> threading.Thread:
        thread = threading.Thread(target=self.relay_forever, name="hub-relay", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
