"""The embedded worker: claims outbox jobs under a lease, runs the pipeline, retries, dead-letters."""

from __future__ import annotations

import os
import random
import secrets
import socket
import threading
from datetime import timedelta

import structlog
from sqlalchemy import delete, func, or_, select, update

from hub import failpoints
from hub.alerts import OpsAlerts
from hub.db import Database, utcnow
from hub.gdpr import DailyPurge
from hub.logs import get_logger
from hub.metrics import DEAD_LETTERS, DECISIONS, QUEUE_DEPTH, QUEUE_LAG
from hub.models import Decision, Event, OutboxJob
from hub.pipeline import ChannelDecision, JobOutcome, Outcome, Pipeline
from hub.settings import Settings

log = get_logger("worker")


def claim(db: Database, owner: str, limit: int, lease_seconds: float) -> list[int]:
    """Leases up to `limit` ready jobs to `owner`; no two live workers ever hold the same job."""
    now = utcnow()
    free = or_(OutboxJob.lease_until.is_(None), OutboxJob.lease_until < now)
    with db.transaction() as session:
        ready = (
            select(OutboxJob.id)
            .where(OutboxJob.state == "pending", OutboxJob.not_before <= now, free)
            .order_by(OutboxJob.not_before, OutboxJob.id)
            .limit(limit)
        )
        if db.dialect == "postgresql":
            ready = ready.with_for_update(skip_locked=True)
        ids = list(session.scalars(ready))
        if not ids:
            return []
        # The WHERE is re-checked on the row itself, so a concurrent claimer that got there
        # first makes this UPDATE skip the row (PostgreSQL re-evaluates; SQLite serialises).
        claimed = session.scalars(
            update(OutboxJob)
            .where(OutboxJob.id.in_(ids), OutboxJob.state == "pending", free)
            .values(
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease_seconds),
                attempts=OutboxJob.attempts + 1,
            )
            .returning(OutboxJob.id)
        )
        return sorted(claimed)


def release(db: Database, owner: str, job_ids: list[int]) -> None:
    """Gives back leased jobs this worker will not start (graceful shutdown): other workers
    may take them at once instead of waiting for the lease to expire."""
    with db.transaction() as session:
        session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_(job_ids), OutboxJob.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, attempts=OutboxJob.attempts - 1)
        )


def backoff(attempt: int, settings: Settings, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def finish(
    db: Database, job_id: int, owner: str, outcome: JobOutcome | None, settings: Settings,
    error: str | None = None,
) -> str:
    """Records the run's decisions and the job's next state, if `owner` still holds the lease."""
    with db.transaction() as session:
        job = session.get(OutboxJob, job_id)
        if job is None or job.lease_owner != owner:
            return "lost_lease"
        event = session.get(Event, job.event_pk)
        job.lease_owner, job.lease_until = None, None
        decisions = list(outcome.decisions) if outcome else []
        transient = error or (outcome.transient_error if outcome else None)
        retry_after = outcome.retry_after if outcome else None
        if outcome is None and error is None:
            job.state = "done"
        elif _too_old(job, settings) and (transient is not None or _circuit_deferred(outcome)):
            reason = transient or "provider circuit still open"
            state = _dead_letter(job, decisions, "max_age_exceeded", reason,
                                 f"max age exceeded: {reason}")
        elif outcome is not None and outcome.defer_until is not None:
            job.state, job.not_before = "pending", outcome.defer_until
            job.attempts -= 1  # a deferral is not a failed attempt
            state = "deferred"
        elif transient is not None and job.attempts >= settings.max_attempts:
            state = _dead_letter(job, decisions, "dead_letter", transient, transient)
        elif transient is not None:
            delay = backoff(job.attempts, settings, retry_after)
            job.state, job.last_error, state = "pending", transient, "retrying"
            job.not_before = utcnow() + timedelta(seconds=delay)
        else:
            job.state, state = "done", "processed"
        if event is not None and (outcome is not None or error is not None):
            if decisions or error is None:
                session.execute(delete(Decision).where(Decision.event_pk == event.id))
                session.add_all(
                    Decision(event_pk=event.id, channel=d.channel, outcome=d.outcome,
                             reason=d.reason, detail=d.detail)
                    for d in decisions
                )
            event.state = state
        for d in decisions:
            DECISIONS.labels(d.channel, d.outcome, d.reason).inc()
        return job.state


def _dead_letter(job: OutboxJob, decisions: list[ChannelDecision], reason: str, detail: str,
                 last_error: str) -> str:
    """Gives the job up: state `dead`, a decision saying why, the metric and an error log."""
    job.state, job.last_error = "dead", last_error
    decisions.append(ChannelDecision("*", Outcome.FAILED, reason, detail))
    DEAD_LETTERS.inc()
    log.error("dead_letter", job_id=job.id, error=last_error, attempts=job.attempts)
    return "dead"


def _too_old(job: OutboxJob, settings: Settings) -> bool:
    """Past the maximum age: a message this late is no longer worth sending."""
    return (utcnow() - job.created_at).total_seconds() > settings.delivery_max_age_seconds


def _circuit_deferred(outcome: JobOutcome | None) -> bool:
    return outcome is not None and any(d.reason == "circuit_open" for d in outcome.decisions)


def refresh_queue_metrics(db: Database) -> None:
    """Updates the queue depth and lag gauges from the store."""
    now = utcnow()
    with db.sessions() as session:
        depth, oldest = session.execute(
            select(func.count(), func.min(OutboxJob.not_before)).where(
                OutboxJob.state == "pending"
            )
        ).one()
    QUEUE_DEPTH.set(depth)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    QUEUE_LAG.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)


class Worker:
    """Polls the outbox and runs each claimed job through the pipeline."""

    def __init__(self, db: Database, pipeline: Pipeline, settings: Settings,
                 alerts: OpsAlerts | None = None) -> None:
        self.alerts = alerts if alerts is not None else OpsAlerts.from_settings(settings)
        self.db = db
        self.pipeline = pipeline
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        # GDPR retention and the limiter's old counters: at start, then daily
        self.daily_purge = DailyPurge(db, settings, housekeeping=pipeline.housekeeping)

    def run_job(self, job_id: int) -> str:
        """One job, start to finish; an unexpected error becomes a retry, never a lost job."""
        failpoints.reach(failpoints.CLAIMED)
        outcome: JobOutcome | None = None
        try:
            with structlog.contextvars.bound_contextvars(job_id=job_id, worker=self.name):
                outcome = self.pipeline.run(job_id)
        except Exception as exc:
            log.exception("job_error", job_id=job_id)
            state = finish(self.db, job_id, self.name, None, self.settings,
                           error=f"{type(exc).__name__}: {exc}")
        else:
            state = finish(self.db, job_id, self.name, outcome, self.settings)
        if state == "dead" and self.alerts is not None:
            self.alerts.dead_letter(job_id, outcome.event_pk if outcome else 0,
                                    "see GET /v1/events for the decisions")
        return state

    def run_once(self) -> int:
        """Claims and runs one batch; returns how many jobs it ran."""
        ids = claim(self.db, self.name, self.settings.worker_batch,
                    self.settings.worker_lease_seconds)
        for done, job_id in enumerate(ids):
            if self._stop.is_set():  # shutting down: hand back what was not started
                release(self.db, self.name, ids[done:])
                break
            self.run_job(job_id)
        return len(ids)

    def drain(self, timeout: float = 30.0) -> None:
        """Runs until no job is ready (tests and the demo)."""
        deadline = utcnow() + timedelta(seconds=timeout)
        while self.run_once() and utcnow() < deadline:
            pass

    def run_forever(self) -> None:
        log.info("worker_started", worker=self.name)
        while not self._stop.is_set():
            self.daily_purge.run_if_due()
            try:
                ran = self.run_once()
            except Exception:
                log.exception("worker_loop_error")
                ran = 0
            if not ran:
                self._wake.wait(self.settings.worker_poll_seconds)
                self._wake.clear()
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
