"""The delivery engine: many provider calls in flight per process, store work per batch.

One batch of claimed jobs goes through five steps, each once per batch:

1. **load**   one transaction reads the jobs, events, customers, consents, subscriptions and
              suppressions (`hub.loading`);
2. **decide** the resolver and the limiter, in memory, route by route in the customer's order;
3. **render** the templates, in memory;
4. **send**   one transaction re-checks that this process still holds each job's lease (the
              fence) and commits the send records; then the provider calls run on a bounded
              thread pool (`HUB_SEND_CONCURRENCY`), outside any transaction;
5. **record** as calls come back, one transaction per drained group writes the answers with
              what they decide: decisions, job states and event states, or the next
              channel's send records.

A permanent failure sends the job back to step 2 for its next channel. A heartbeat extends
the lease of every held job, so a call slower than the lease never lets a second worker in.
The adapters are synchronous SDKs; a pool of threads blocked on sockets costs ~8 MB of
virtual (not resident) stack each and no CPU while waiting, which is why threads suffice.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from channels.ratelimit import ProviderRateLimiter
from hub import app_push, failpoints
from hub.campaigns.copy import campaign_channels, template_set_of  # issue 13
from hub.clicks import TRACKED_CATEGORIES, record_links, track_links
from hub.customers import alive_customers
from hub.db import Database, utcnow
from hub.delivery import (
    Send,
    SendMode,
    call,
    idempotency_key,
    is_unconfirmed,
    open_sends,
    record_results,
)
from hub.loading import JobRow, Loaded, load_batch
from hub.logs import get_logger
from hub.metrics import DEAD_LETTERS, DECISIONS, JOBS_HELD
from hub.models import OutboxJob
from hub.outcomes import ChannelDecision, JobOutcome, Outcome, job_values, transition, write_rows
from hub.pipeline import Pipeline, after_settled, message_metadata, throttle_request
from hub.settings import Settings
from preferences import COPY_CHANNELS, EventFacts, Resolution, SkipReason, resolve
from templates import DIGEST, RenderRequest
from templates.renderer import TemplateMissing
from throttling import Verdict

log = get_logger("engine")
TakeOver = Callable[[Session, list[int]], list[int]]
DRAIN_MAX = 512  # answers recorded per transaction at most
# Answers arriving within this window share one transaction (each commit costs an fsync).
GATHER_SECONDS = 0.02
# The store itself is away or busy (not one job's data): raised to the caller, which retries.
STORE_AWAY = (OperationalError, InterfaceError)


@dataclass(slots=True)
class Batch:
    """Jobs submitted together; `wait()` returns when each is finished or lost."""

    remaining: int
    size: int = 0  # jobs this engine got (claimed or taken over)
    not_taken: int = 0  # jobs a take-over did not get (run elsewhere, or not due yet)
    states: dict[int, str] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finished(self, job_id: int, state: str) -> None:
        with self.lock:
            self.states[job_id] = state
            self.remaining -= 1
            if self.remaining <= 0:
                self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout) if self.remaining > 0 else True


@dataclass(slots=True)
class Job:
    """A held job on its way through the steps."""

    row: JobRow
    batch: Batch
    resolution: Resolution | None = None
    outcome: JobOutcome | None = None
    route: int = 0
    settled: ChannelDecision | None = None
    error: str | None = None
    lost: bool = False
    waiting: int = 0  # answers the current route still expects (app push: one per device)
    answers: list[ChannelDecision] = field(default_factory=list)

    @property
    def id(self) -> int:
        return self.row.id


class Engine:
    """One per process: the embedded worker and the dramatiq actors both feed it."""

    def __init__(self, db: Database, pipeline: Pipeline, settings: Settings, owner: str,
                 rate_limiter: ProviderRateLimiter | None = None) -> None:
        self.db, self.pipeline, self.settings, self.owner = db, pipeline, settings, owner
        # provider rate limits: see the marked call site in hub.delivery.call
        self.rate_limiter = rate_limiter or pipeline.rate_limiter
        self.concurrency = settings.send_concurrency
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hub-send")
        self._answers: queue.Queue[Send] = queue.Queue()
        self._held: dict[int, Job] = {}
        self._capacity = threading.Condition()
        self._stop = threading.Event()
        # a send record younger than this may belong to a call still in flight elsewhere
        self.in_doubt_seconds = settings.send_window_seconds
        self._threads = [threading.Thread(target=self._record_forever, name="hub-record",
                                          daemon=True),
                         threading.Thread(target=self._heartbeat_forever, name="hub-lease",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()

    # -- capacity -----------------------------------------------------------------------

    def free(self) -> int:
        """How many more jobs this engine takes now (one provider call each at most)."""
        with self._capacity:
            return max(0, self.concurrency - len(self._held))

    def wait_for_capacity(self, timeout: float, at_least: int = 1) -> int:
        """Waits (up to `timeout`) until `at_least` jobs fit, or the engine is idle; returns
        how many fit. Claiming in bigger groups costs fewer transactions per job."""
        deadline = time.monotonic() + timeout
        with self._capacity:
            while True:
                free = self.concurrency - len(self._held)
                if free >= min(at_least, self.concurrency) or not self._held:
                    return free
                left = deadline - time.monotonic()
                if left <= 0:
                    return free
                self._capacity.wait(left)

    def held(self) -> list[int]:
        with self._capacity:
            return list(self._held)

    # -- 1. load ------------------------------------------------------------------------

    def submit(self, job_ids: list[int], take: TakeOver | None = None) -> Batch:
        """Takes leased jobs (leased to `self.owner`) through the steps; returns at once.
        `take` first moves the jobs' leases to this engine in the load transaction (the
        dramatiq actors: from the relay) and returns the ids it got."""
        if not job_ids:
            return Batch(0)
        failpoints.reach(failpoints.CLAIMED)
        return self._load(lambda session: take(session, job_ids) if take else job_ids, job_ids)

    def claim_and_submit(self, claim: Callable[[Session], list[int]]) -> Batch:
        """`submit` for jobs that `claim` leases to `self.owner` in the load transaction
        (the embedded worker): the claim and the load commit once."""
        return self._load(claim)

    def _load(self, ids_in: Callable[[Session], list[int]], asked: list[int] | None = None
              ) -> Batch:
        try:
            ids, rows = self._load_together(ids_in, claiming=asked is None)
        except STORE_AWAY:
            raise
        except Exception:  # one job's data breaks the load: it must not hold back the rest
            log.exception("load_error")
            ids, rows = self._load_one_by_one(ids_in)
        asked = ids if asked is None else asked
        batch = Batch(len(asked), size=len(ids), not_taken=len(asked) - len(ids))
        jobs = [Job(row, batch, error=error) for row, error in rows]
        for missing in set(asked) - {j.id for j in jobs}:  # finished or taken elsewhere
            batch.finished(missing, "lost_lease")
        with self._capacity:
            self._held.update((job.id, job) for job in jobs)
            JOBS_HELD.set(len(self._held))
        self._advance(jobs)
        return batch

    def _load_together(self, ids_in: Callable[[Session], list[int]], claiming: bool
                       ) -> tuple[list[int], list[tuple[JobRow, str | None]]]:
        """The claim (or take-over) and the whole batch's load, in one transaction."""
        with self.db.transaction() as session:
            ids = ids_in(session)
            if claiming and ids:
                failpoints.reach(failpoints.CLAIMED)  # dies with the claim uncommitted
            rows = load_batch(session, self.owner, ids, self.pipeline.erasure_key) if ids else []
            if ids:
                self.pipeline.published.refresh(session)  # a publish counts from the next batch
        return ids, [(row, None) for row in rows]

    def _load_one_by_one(self, ids_in: Callable[[Session], list[int]]
                         ) -> tuple[list[int], list[tuple[JobRow, str | None]]]:
        """After a failed load: the claim commits alone (so each job's attempt counts), then
        each job loads in its own transaction. A job that still fails is finished as a failed
        attempt: retried with backoff, and a dead letter after the last attempt."""
        with self.db.transaction() as session:
            ids = ids_in(session)
        rows: list[tuple[JobRow, str | None]] = []
        for job_id in ids:
            try:
                with self.db.transaction() as session:
                    rows.extend((row, None) for row in load_batch(
                        session, self.owner, [job_id], self.pipeline.erasure_key))
            except STORE_AWAY:
                raise  # the claimed jobs wait for their leases to expire
            except Exception as exc:
                log.exception("load_error", job_id=job_id)
                with self.db.sessions() as session:
                    bare = session.execute(
                        select(OutboxJob.id, OutboxJob.event_pk, OutboxJob.attempts,
                               OutboxJob.created_at)
                        .where(OutboxJob.id == job_id, OutboxJob.state == "pending",
                               OutboxJob.lease_owner == self.owner)).one_or_none()
                if bare is not None:
                    rows.append((JobRow(*bare, loaded=None),
                                 f"load failed: {type(exc).__name__}"))
        if ids:
            try:
                with self.db.sessions() as session:
                    self.pipeline.published.refresh(session)
            except STORE_AWAY:
                raise
            except Exception:  # keep rendering with the templates published before
                log.exception("published_templates_error")
        return ids, rows

    def _advance(self, jobs: list[Job], answers: list[Send] | None = None) -> bool:
        """Walks jobs until each waits for a provider call or is settled, then finishes the
        settled ones. `answers` (provider answers these jobs were walked on from) are
        recorded in the first transaction this opens, so an answer, the next channel's send
        record and the job's final state commit together. A store outage is waited out;
        past one lease the jobs are let go (their leases expire and a worker runs them
        again, the send records keep that safe). False if `answers` were not recorded."""
        settled: list[Job] = []
        while jobs:
            sends: list[Send] = []
            for job in jobs:
                step = self._walk(job)
                (settled.append(job) if step is None else sends.extend(step))
            again: list[Job] = []
            if sends:
                if self._retrying(partial(self._send, sends, settled, again, answers), "send"):
                    answers = None
                else:
                    self._drop([s.context[0] for s in sends])
            jobs = again
        if (settled or answers) and not self._retrying(partial(self._finish, settled, answers),
                                                       "finish"):
            self._drop(settled)
            return answers is None
        return True

    def _drop(self, jobs: list[Job]) -> None:
        """Lets jobs go without writing anything (the store is unreachable)."""
        jobs = list({job.id: job for job in jobs}.values())  # one job may have many sends
        for job in jobs:
            job.lost = True
        self._release_capacity(jobs, {})

    # -- 2. decide and 3. render ----------------------------------------------------------

    def _walk(self, job: Job) -> list[Send] | None:
        """The job's routes in the customer's order from where it stopped: the first that
        sends wins, later ones are fallbacks used only after a permanent failure. A copy
        channel (the inbox) is sent whatever the order did."""
        loaded = job.row.loaded
        if loaded is None or job.error is not None:
            return None
        try:
            if job.resolution is None:
                job.resolution, job.outcome = self._resolve(loaded), JobOutcome(loaded.event_pk)
            routes = job.resolution.routes
            while job.route < len(routes):
                route = routes[job.route]
                if route.action != "send":
                    self._settle(job, ChannelDecision(route.channel, Outcome.SKIPPED,
                                                      route.reason, route.detail))
                elif job.settled is not None and route.channel not in COPY_CHANNELS:
                    self._settle(job, after_settled(job.settled, route.channel))
                else:
                    step = self._decide_and_render(job, loaded, route.channel, route.address or "")
                    if isinstance(step, list):
                        job.waiting, job.answers = len(step), []
                        return step
                    self._settle(job, step)
        except Exception as exc:  # a bug in a stage: retry the job later, never lose it
            log.exception("job_error", job_id=job.id)
            job.error = f"{type(exc).__name__}"
        return None

    def _resolve(self, loaded: Loaded) -> Resolution:
        etype, recipient = loaded.etype, loaded.recipient
        return resolve(EventFacts(etype.name, etype.category, etype.urgent,
                                  campaign_channels(loaded.payload)), recipient.profile,
                       recipient.preferences, recipient.consents,
                       enabled_channels=app_push.enabled_channels(self.pipeline.stages.transports))

    def _settle(self, job: Job, decision: ChannelDecision) -> None:
        """Records one channel's decision and moves to the next route. A copy channel never
        settles the order, but its deferral makes the job run again."""
        outcome = job.outcome
        assert outcome is not None
        outcome.decisions.append(decision)
        job.route += 1
        if decision.channel == "*" or decision.outcome is Outcome.SKIPPED:
            return
        copy = decision.channel in COPY_CHANNELS
        if job.settled is not None and not copy:
            return
        if not copy:
            job.settled = None if decision.outcome is Outcome.FAILED else decision
        if decision.outcome is Outcome.DEFERRED and decision.until is not None:
            earlier = outcome.defer_until
            outcome.defer_until = min(earlier, decision.until) if earlier else decision.until
        elif decision.outcome is Outcome.DEFERRED:
            outcome.transient_error = decision.detail or decision.reason
            outcome.retry_after = decision.retry_after

    def _decide_and_render(self, job: Job, loaded: Loaded, channel: str, address: str
                           ) -> ChannelDecision | list[Send]:
        """The limiter's verdict, then the rendered message as Sends (or why not): one, or
        for app push one per active device."""
        stages, etype = self.pipeline.stages, loaded.etype
        request = throttle_request(loaded, channel)
        verdict = stages.limiter.check(request)
        if verdict.verdict is Verdict.DROP:
            return ChannelDecision(channel, Outcome.DROPPED, verdict.reason)
        if verdict.verdict is Verdict.DEFER:
            detail = f"until {verdict.until:%Y-%m-%dT%H:%M%z}" if verdict.until else None
            return ChannelDecision(channel, Outcome.DEFERRED, verdict.reason, detail,
                                   verdict.until)
        profile, payload = loaded.recipient.profile, loaded.payload
        try:
            context = stages.renderer.context(
                payload, {"customer_id": profile.customer_id, "name": profile.name,
                          "tenant": loaded.recipient.tenant,
                          "event_ref": loaded.event_pk,  # delivery feedback: rating links
                          "segment": profile.segment, "time_zone": profile.time_zone},
                now=utcnow(), channel=channel, category=etype.category,
                items=self.pipeline.digest_items(verdict.digest) if verdict.digest else None)
            rendered = stages.renderer.render(RenderRequest(
                DIGEST if verdict.digest else etype.name, channel,
                job.resolution.locales if job.resolution else ("pl",),
                job.resolution.tone if job.resolution else "formal", context,
                template_set=None if verdict.digest else template_set_of(
                    payload, loaded.recipient.tenant),
                tenant=loaded.recipient.tenant))
        except Exception as exc:  # any failure to render is this channel's; try the next
            stages.limiter.release(request)
            reason = "template_missing" if isinstance(exc, TemplateMissing) else "render_error"
            log.warning("render_failed", job_id=job.id, channel=channel, error=type(exc).__name__)
            return ChannelDecision(channel, Outcome.FAILED, reason, _safe_error(exc))
        failpoints.reach(failpoints.RENDERED)
        meta = message_metadata(etype, payload.get("parcel") or {}, channel, rendered,
                                context.links.unsubscribe)
        if channel == "inbox":
            meta["tenant"] = loaded.recipient.tenant  # the inbox adapter writes the tenant's row
        targets = (app_push.targets(loaded, stages.transports, meta, utcnow())
                   if channel == app_push.CHANNEL
                   else [(stages.transports.get(channel), address, meta)])
        sends = []
        for adapter, to, metadata in targets:
            if adapter is None:
                continue
            key = idempotency_key(self.pipeline.record_secret, loaded.event_pk, channel, to)
            body, links = rendered, None
            if etype.category in TRACKED_CATEGORIES:  # campaign and loyalty links: /c/<token>
                body, metadata, links = track_links(  # signed like the /c/ route checks
                    self.settings.secret_key.get_secret_value(), self.settings.public_base_url,
                    key, payload, rendered, metadata, pixel=self.settings.email_open_pixel)
            sends.append(Send(key, self.pipeline.envelope(loaded, channel, to, body, metadata),
                              adapter, context=(job, request, body),
                              event_id=payload.get("event_id"), job_id=job.id, links=links))
        if not sends:
            stages.limiter.release(request)
            return ChannelDecision(channel, Outcome.FAILED, "channel_unavailable")
        return sends

    # -- 4. send --------------------------------------------------------------------------

    def _send(self, sends: list[Send], settled: list[Job], again: list[Job],
              answers: list[Send] | None = None) -> None:
        """Fences and opens the send records in one transaction (with `answers` recorded
        first), then hands the calls to the pool. Jobs answered without a call go to `again`
        (to walk on), lost ones to `settled`."""
        job_ids = [s.context[0].id for s in sends]
        with self.db.transaction() as session:  # retried whole on a store error
            if answers:
                record_results(session, answers, self.pipeline.erasure_key)
            held = self._extend_leases(session, job_ids)  # the fence: only the lease owner
            # the erasure fence: a customer erased since the load is never sent to
            alive = alive_customers(session, self.pipeline.erasure_key, {
                (s.env.tenant, s.env.customer_id) for s in sends if s.context[0].id in held})
            live = [s for s in sends
                    if s.context[0].id in held and (s.env.tenant, s.env.customer_id) in alive]
            if live:
                record_links(session, live)  # a retried send finds its rows: same tokens
                open_sends(session, live, self.in_doubt_seconds)
        calls = []
        for send in sends:
            job = send.context[0]
            if job.id not in held:
                if not job.lost:
                    job.lost = True
                    settled.append(job)
                continue
            if (send.env.tenant, send.env.customer_id) not in alive:
                decision = ChannelDecision(
                    send.env.channel, Outcome.SKIPPED, SkipReason.ERASED,
                    "the customer was erased while the job was in flight; not sent")
            elif send.mode is SendMode.SETTLED:
                decision = self._decision(send)
            elif send.mode is SendMode.WAIT:
                decision = ChannelDecision(
                    send.env.channel, Outcome.DEFERRED, "send_in_doubt",
                    "an earlier call may still be in flight", send.wait_until)
            else:
                calls.append(send)
                continue
            if self._collect(job, send, decision):
                again.append(job)
        # Only now: a job's answers from the pool (recorder thread) never meet its answers
        # collected above (this thread) while app push waits for all of its devices.
        for send in calls:
            self.pool.submit(self._call, send)

    def _call(self, send: Send) -> None:
        """In a pool thread: the provider call; the answer goes to the recorder."""
        try:
            send.result = call(send, self.rate_limiter)
        except Exception as exc:  # never leave a send without an answer
            from channels import SendResult

            send.result = SendResult.transient(f"engine error: {type(exc).__name__}")
        self._answers.put(send)

    # -- 5. record ------------------------------------------------------------------------

    def _record_forever(self) -> None:
        """Drains answers and records each drained group in one transaction."""
        while not (self._stop.is_set() and self._answers.empty() and not self._held):
            try:
                first = self._answers.get(timeout=0.1)
            except queue.Empty:
                continue
            group = [first]
            until = time.monotonic() + GATHER_SECONDS
            while len(group) < DRAIN_MAX:
                try:
                    group.append(self._answers.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            # The answers decide what each job does next (settle, or the next channel); then
            # one transaction records the answers with those next steps.
            jobs = []
            for send in group:
                job = send.context[0]
                if not job.lost and self._collect(job, send, self._decision(send)):
                    jobs.append(job)
            try:
                recorded = self._advance(jobs, answers=group)
            except Exception:  # a bug: let the jobs go, their leases expire
                log.exception("engine_advance_failed")
                recorded = False
            if not recorded:  # the records stay `sending`: in doubt, never sent again
                self._drop([s.context[0] for s in group])

    def _retrying(self, work: Any, what: str) -> bool:
        """Store outages (a PostgreSQL restart) are waited out, up to one lease; False when
        the store stayed away."""
        deadline = time.monotonic() + max(5.0, self.settings.worker_lease_seconds)
        while True:
            try:
                work()
                return True
            except Exception as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    log.error("engine_gave_up", step=what, error=type(exc).__name__)
                    return False
                log.warning("engine_retry", step=what, error=type(exc).__name__)
                time.sleep(0.5)

    def _collect(self, job: Job, send: Send, decision: ChannelDecision) -> bool:
        """Takes one answer of the job's current route; once every answer is in (app push
        waits for all devices), settles the channel and returns True. A channel that was
        not sent gives its limiter slots back."""
        job.answers.append(decision)
        if len(job.answers) < job.waiting:
            return False
        combined = app_push.combine(job.answers)
        job.answers, job.waiting = [], 0
        if combined.outcome is not Outcome.SENT:
            self.pipeline.stages.limiter.release(send.context[1])
        self._settle(job, combined)
        return True

    @staticmethod
    def _decision(send: Send) -> ChannelDecision:
        """The decision a provider answer (or an earlier record) gives the channel."""
        rendered = send.context[2]
        result, channel = send.result, send.env.channel
        assert result is not None
        if result.ok:
            fallback = (f"; template fallback: {', '.join(rendered.fallbacks)}"
                        if rendered.fallbacks else "")
            # a published draft names its version, so support sees which copy was sent
            draft = f"; {rendered.template}" if rendered.template.startswith("draft:") else ""
            decision = ChannelDecision(channel, Outcome.SENT, "sent",
                                       f"{result.provider_message_id}{fallback}{draft}")
        elif is_unconfirmed(result):  # most likely delivered: neither retried nor failed over
            decision = ChannelDecision(channel, Outcome.SENT, "send_unconfirmed", result.error)
        elif result.circuit_open:  # provider known to be down: wait, no attempt spent
            until = utcnow() + timedelta(seconds=result.retry_after or 1.0)
            decision = ChannelDecision(channel, Outcome.DEFERRED, "circuit_open", result.error,
                                       until)
        elif result.error_class == "transient":
            decision = ChannelDecision(channel, Outcome.DEFERRED, "provider_transient",
                                       result.error, retry_after=result.retry_after)
        else:
            decision = ChannelDecision(channel, Outcome.FAILED, "provider_permanent",
                                       result.error)
        return decision

    def _finish(self, jobs: list[Job], answers: list[Send] | None = None) -> None:
        """Decisions, job states and event states of settled jobs (with `answers` recorded
        first), in one transaction."""
        live = [j for j in jobs if not j.lost]
        states: dict[int, str] = {}
        if live or answers:
            with self.db.transaction() as session:
                if answers:
                    record_results(session, answers, self.pipeline.erasure_key)
                states = self._write_outcomes(session, live) if live else {}
        self._release_capacity(jobs, states)

    def _release_capacity(self, jobs: list[Job], states: dict[int, str]) -> None:
        with self._capacity:  # a job let go twice (dropped, then its group) counts once
            released = [job for job in jobs if self._held.pop(job.id, None) is not None]
            JOBS_HELD.set(len(self._held))
            self._capacity.notify_all()
        for job in released:
            job.batch.finished(job.id, states.get(job.id, "lost_lease"))
            if states.get(job.id) == "dead":
                self.pipeline.alert_dead_letter(job.id, job.row.event_pk)

    def _write_outcomes(self, session: Any, jobs: list[Job]) -> dict[int, str]:
        now = utcnow()
        owned = set(session.connection().scalars(_OWNED, {
            "b_ids": [j.id for j in jobs], "b_owner": self.owner}))
        job_rows, event_rows, decisions, states = [], [], [], {}
        for job in (j for j in jobs if j.id in owned):
            outcome = job.outcome if job.row.loaded is not None else None
            if job.error is not None:
                outcome = outcome or JobOutcome(job.row.event_pk)
            age = (now - job.row.created_at).total_seconds()
            step = transition(outcome, job.error, job.row.attempts, age, self.settings, now)
            made = list(outcome.decisions) if outcome else []
            if step.extra is not None:
                made.append(step.extra)
                DEAD_LETTERS.inc()
                log.error("dead_letter", job_id=job.id, error=step.job.get("last_error"),
                          attempts=job.row.attempts)
            job_rows.append({"b_id": job.id, "b_updated_at": now, **job_values(step.job, job.row.attempts)})
            states[job.id] = step.job["state"]
            if outcome is not None or job.error is not None:
                event_rows.append({"b_id": job.row.event_pk, "b_state": step.state})
                if made or job.error is None:
                    decisions.append((job.row.event_pk, made))
            for d in made:
                DECISIONS.labels(d.channel, d.outcome, d.reason).inc()
            if job.row.loaded is not None:
                log.info("processed", job_id=job.id, event_id=job.row.loaded.payload["event_id"],
                         decisions=[f"{d.channel}:{d.outcome}:{d.reason}" for d in made])
        write_rows(session, job_rows, event_rows, decisions, now)
        return states

    # -- lifecycle --------------------------------------------------------------------------

    def _heartbeat_forever(self) -> None:
        """Extends the lease of every held job while it is in flight."""
        period = max(0.05, self.settings.worker_lease_seconds / 3)
        while not self._stop.wait(period):
            ids = self.held()
            if not ids:
                continue
            try:
                with self.db.transaction() as session:
                    kept = self._extend_leases(session, ids)
            except Exception:
                log.warning("lease_heartbeat_failed", jobs=len(ids))
                continue
            if lost := set(ids) - kept:
                log.warning("leases_lost", jobs=len(lost))

    def _extend_leases(self, session: Session, job_ids: list[int]) -> set[int]:
        """Extends the leases this engine still holds (pending jobs); returns their ids."""
        return set(session.connection().scalars(_EXTEND, {
            "b_ids": job_ids, "b_owner": self.owner,
            "b_until": utcnow() + timedelta(seconds=self.settings.worker_lease_seconds)}))

    def close(self, timeout: float = 60.0) -> None:
        """Waits for the calls in hand and their records, then stops the threads."""
        deadline = time.monotonic() + timeout
        while self.held() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self.pool.shutdown(wait=True)
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))


# Built once (each batch runs them, and building a statement cost more than running it).
_JOBS = cast(Table, OutboxJob.__table__).c
_MINE = (_JOBS.id.in_(bindparam("b_ids", expanding=True)),
         _JOBS.lease_owner == bindparam("b_owner"))
_OWNED = select(_JOBS.id).where(*_MINE)
_EXTEND = (update(OutboxJob.__table__).where(*_MINE, _JOBS.state == "pending")
           .values(lease_until=bindparam("b_until")).returning(_JOBS.id))


def _safe_error(exc: Exception) -> str:
    """A render error's message names the template and variable; anything else only its
    type (its text may hold personal data)."""
    from templates import RenderError

    return str(exc) if isinstance(exc, RenderError) else f"{type(exc).__name__} while rendering"
