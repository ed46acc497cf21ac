"""Worker and delivery rules: retries, fallback, dead letters, leases, crash reconciliation."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channels import OutgoingMessage, SendResult
from channels.console import ConsoleAdapter
from hub.db import utcnow
from hub.delivery import idempotency_key
from hub.events import EventIn
from hub.intake import accept
from hub.models import Decision, Event, Notification, OutboxJob
from hub.runtime import HubRuntime
from hub.worker import Worker, claim
from tests.helpers import event, make_runtime, read_outbox


class ScriptedAdapter:
    """A channel whose answers are scripted; records what it was asked to send."""

    name = "scripted"

    def __init__(self, *answers: SendResult) -> None:
        self.answers = list(answers)
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        return self.answers.pop(0) if self.answers else SendResult.sent("ok")

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        return None


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> HubRuntime:
    return make_runtime(database_url, tmp_path, max_attempts=3)


def _post(runtime: HubRuntime, **over: object) -> None:
    accept(runtime.db, "p", [EventIn.model_validate(event(**over))])


def _with(runtime: HubRuntime, **transports: object) -> Worker:
    stages = runtime.pipeline.stages
    runtime.pipeline.stages = replace(stages, transports={**stages.transports, **transports})
    return Worker(runtime.db, runtime.pipeline, runtime.settings)


def _decisions(runtime: HubRuntime) -> list[tuple[str, str, str]]:
    with runtime.db.sessions() as s:
        return [(d.channel, d.outcome, d.reason) for d in s.scalars(select(Decision).order_by(Decision.id))]


def _run_until_idle(worker: Worker, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.run_once()
        with worker.db.sessions() as s:
            if not s.scalars(select(OutboxJob).where(OutboxJob.state == "pending")).first():
                return
        time.sleep(0.01)


def test_transient_errors_are_retried_then_sent_once(runtime: HubRuntime) -> None:
    sms = ScriptedAdapter(SendResult.transient("503"), SendResult.transient("429", retry_after=0.05))
    worker = _with(runtime, sms=sms)
    _post(runtime)
    _run_until_idle(worker)
    assert len(sms.sent) == 3
    assert len({m.idempotency_key for m in sms.sent}) == 1
    assert _decisions(runtime)[2] == ("sms", "sent", "sent")
    with runtime.db.sessions() as s:
        note = s.scalars(select(Notification)).one()
        assert [h["status"] for h in note.history] == [
            "sending", "retry", "sending", "retry", "sending", "sent"]


def test_permanent_failure_falls_back_to_next_channel(runtime: HubRuntime) -> None:
    sms = ScriptedAdapter(SendResult.permanent("21211 invalid number"))
    email = ScriptedAdapter()
    worker = _with(runtime, sms=sms, email=email)
    _post(runtime)
    _run_until_idle(worker)
    assert len(email.sent) == 1 and email.sent[0].address == "anna.kowalska@example.pl"
    assert _decisions(runtime) == [
        ("inbox", "skipped", "no_address"),
        ("app_push", "skipped", "no_address"),
        ("sms", "failed", "provider_permanent"),
        ("email", "sent", "sent"),
        ("push", "skipped", "no_address"),
    ]


def test_dead_letter_after_max_attempts(runtime: HubRuntime) -> None:
    sms = ScriptedAdapter(*[SendResult.transient("down")] * 10)
    worker = _with(runtime, sms=sms)
    _post(runtime)
    _run_until_idle(worker)
    assert len(sms.sent) == 3
    with runtime.db.sessions() as s:
        job = s.scalars(select(OutboxJob)).one()
        assert (job.state, job.last_error) == ("dead", "down")
        assert s.scalars(select(Event)).one().state == "dead"
    assert ("*", "failed", "dead_letter") in _decisions(runtime)


def test_expired_lease_is_reclaimed(runtime: HubRuntime) -> None:
    _post(runtime)
    assert claim(runtime.db, "dead-worker", 10, lease_seconds=0.2) == [1]
    assert claim(runtime.db, "live-worker", 10, lease_seconds=30) == []
    time.sleep(0.3)
    assert claim(runtime.db, "live-worker", 10, lease_seconds=30) == [1]


def _crash_mid_send(runtime: HubRuntime, tmp_path: Path, provider_got_it: bool,
                    age: float = 3600.0) -> Worker:
    """Leaves the state a worker killed during the provider call leaves behind, `age`
    seconds ago."""
    _post(runtime)
    with runtime.db.transaction() as s:
        event_pk = s.scalars(select(Event.id)).one()
        key = idempotency_key(runtime.pipeline.record_secret, event_pk, "sms", "+48512345678")
        s.add(Notification(idempotency_key=key, event_pk=event_pk, customer_id="c-1001",
                           event_type="parcel.ready_for_pickup", channel="sms",
                           address="+48512345678", status="sending", history=[],
                           updated_at=utcnow() - timedelta(seconds=age)))
    console = ConsoleAdapter(tmp_path / "outbox.jsonl")
    if provider_got_it:
        console.send(OutgoingMessage(key, "sms", "+48512345678", {"body": "x"}, "pl"))
    return _with(runtime, sms=console)


def test_crash_after_provider_call_is_reconciled_not_resent(
    runtime: HubRuntime, tmp_path: Path
) -> None:
    worker = _crash_mid_send(runtime, tmp_path, provider_got_it=True)
    _run_until_idle(worker)
    assert len(read_outbox(tmp_path / "outbox.jsonl")) == 1
    assert _decisions(runtime)[2] == ("sms", "sent", "sent")


def test_unconfirmable_send_is_not_repeated(runtime: HubRuntime, tmp_path: Path) -> None:
    sms = ScriptedAdapter()
    worker = _crash_mid_send(runtime, tmp_path, provider_got_it=False)
    worker = _with(runtime, sms=sms)
    _run_until_idle(worker)
    assert sms.sent == []
    with runtime.db.sessions() as s:
        assert s.scalars(select(Notification)).one().status == "unconfirmed"
    assert _decisions(runtime)[2:4] == [
        ("sms", "sent", "send_unconfirmed"),  # most likely delivered: no fallback either
        ("email", "skipped", "fallback_not_needed"),
    ]


def test_deferral_does_not_use_an_attempt(runtime: HubRuntime) -> None:
    from throttling import ThrottleDecision, Verdict

    class DeferOnce:
        calls = 0

        def check(self, request: object) -> ThrottleDecision:
            self.calls += 1
            if self.calls == 1:
                return ThrottleDecision(Verdict.DEFER, "quiet_hours", utcnow())
            return ThrottleDecision(Verdict.ALLOW, "ok")

        def release(self, request: object) -> None:
            return None

    runtime.pipeline.stages = replace(runtime.pipeline.stages, limiter=DeferOnce())
    worker = Worker(runtime.db, runtime.pipeline, runtime.settings)
    _post(runtime)
    worker.run_once()
    assert _decisions(runtime)[2] == ("sms", "deferred", "quiet_hours")
    with runtime.db.sessions() as s:
        assert s.scalars(select(OutboxJob)).one().attempts == 0
    _run_until_idle(worker)
    assert _decisions(runtime)[2] == ("sms", "sent", "sent")


def test_crash_before_provider_call_sends_once_where_provider_can_tell(
    runtime: HubRuntime, tmp_path: Path
) -> None:
    worker = _crash_mid_send(runtime, tmp_path, provider_got_it=False)
    _run_until_idle(worker)
    assert len(read_outbox(tmp_path / "outbox.jsonl")) == 1
    assert _decisions(runtime)[2] == ("sms", "sent", "sent")


def test_daily_purge_also_runs_the_limiters_housekeeping(runtime: HubRuntime) -> None:
    calls: list[int] = []
    runtime.pipeline.housekeeping = lambda: calls.append(1)  # type: ignore[method-assign]
    worker = Worker(runtime.db, runtime.pipeline, runtime.settings)
    worker.daily_purge.run_if_due()
    worker.daily_purge.run_if_due()  # not due again until tomorrow
    assert calls == [1]


def test_a_young_sending_record_is_left_to_its_call(runtime: HubRuntime, tmp_path: Path) -> None:
    """A record another worker opened moments ago may belong to a call still in flight:
    neither reconciled nor resent, the job waits (no attempt spent) until it is old enough."""
    _crash_mid_send(runtime, tmp_path, provider_got_it=False, age=0.0)
    worker = Worker(runtime.db, runtime.pipeline, runtime.settings)
    worker.run_once()
    assert read_outbox(tmp_path / "outbox.jsonl") == []
    assert _decisions(runtime)[2] == ("sms", "deferred", "send_in_doubt")
    with runtime.db.sessions() as s:
        job = s.scalars(select(OutboxJob)).one()
        note = s.scalars(select(Notification)).one()
    assert (job.state, job.attempts, note.status) == ("pending", 0, "sending")
    assert (job.not_before - utcnow()).total_seconds() > runtime.settings.provider_timeout_seconds


def test_send_record_key_is_keyed_by_the_secret() -> None:
    """The address part of the key is an HMAC: without the secret a logged key cannot be
    matched against a list of phone numbers (a plain SHA-256 could, in under a second)."""
    import hashlib

    phone = "+48512345678"
    one, other = (idempotency_key(secret, 7, "sms", phone) for secret in ("s-1", "s-2"))
    assert one != other and one.startswith("7:sms:")
    assert hashlib.sha256(phone.encode()).hexdigest()[:16] not in one


def test_any_render_exception_fails_that_channel_and_the_next_is_tried(
    runtime: HubRuntime,
) -> None:
    """Not only RenderError: any exception while rendering is the channel's render_error."""
    renderer = runtime.pipeline.stages.renderer

    class BrokenSms:
        def __getattr__(self, name: str) -> object:
            return getattr(renderer, name)

        def render(self, request: object) -> object:
            if getattr(request, "channel", None) == "sms":
                raise ValueError("digits out of range for the formatter")
            return renderer.render(request)  # type: ignore[arg-type]

    email = ScriptedAdapter()
    runtime.pipeline.stages = replace(runtime.pipeline.stages, renderer=BrokenSms())  # type: ignore[arg-type]
    worker = _with(runtime, email=email)
    _post(runtime)
    _run_until_idle(worker)
    assert [m.channel for m in email.sent] == ["email"]
    decisions = _decisions(runtime)
    assert decisions[2:4] == [("sms", "failed", "render_error"), ("email", "sent", "sent")]
    with runtime.db.sessions() as s:
        detail = s.scalars(select(Decision.detail).where(Decision.channel == "sms")).one()
        assert s.scalars(select(OutboxJob.state)).one() == "done"
    assert detail == "ValueError while rendering"  # the text may hold personal data


def test_claim_takes_urgent_first_but_keeps_a_share_for_other_lanes(runtime: HubRuntime) -> None:
    accept(runtime.db, "p", [EventIn.model_validate(event(f"m-{i}", type_="marketing.campaign",
                                                          parcel=None)) for i in range(15)])
    accept(runtime.db, "p", [EventIn.model_validate(event(f"u-{i}", type_="parcel.out_for_delivery"))
                             for i in range(15)])
    with runtime.db.sessions() as s:
        lanes = {i: lane for i, lane in s.execute(select(OutboxJob.id, OutboxJob.lane))}
    ids = claim(runtime.db, "w", 10, lease_seconds=30)
    assert [lanes[i] for i in ids] == ["urgent"] * 9 + ["bulk"]  # urgent first, bulk not starved
    assert ids[:9] == sorted(ids[:9]) and min(ids[:9]) == 16  # oldest urgent first


def test_a_pickup_with_a_far_deadline_is_not_urgent() -> None:
    from hub.events import event_types
    from hub.lanes import Lane, lane_of

    now = utcnow()
    pickup = event_types()["parcel.ready_for_pickup"]
    far = {"parcel": {"pickup_point": {"deadline": (now + timedelta(days=5)).isoformat()}}}
    near = {"parcel": {"pickup_point": {"deadline": (now + timedelta(hours=3)).isoformat()}}}
    assert lane_of(pickup, far, now) is Lane.NORMAL
    assert lane_of(pickup, near, now) is Lane.URGENT
    assert lane_of(event_types()["marketing.campaign"], {}, now) is Lane.BULK


def test_hub_worker_serves_metrics_on_its_own_port(tmp_path: Path) -> None:
    """`hub worker --metrics-port`: a worker host can be scraped; queue depth per lane, sends
    in flight and per-provider latency are there."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from hub import migrate
    from hub.db import Database
    from tests.helpers import free_port

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = Database(url)
    migrate.upgrade(db)
    accept(db, "p", [EventIn.model_validate(event("m-1", type_="marketing.campaign",
                                                  parcel=None))])
    port = free_port()
    env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_LOG_LEVEL": "ERROR",
           "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "hub", "worker", "--metrics-port", str(port)],
                            env=env)
    try:
        text = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                if 'hub_outbox_lane_ready{lane="urgent"}' in text:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    for name in ('hub_outbox_lane_ready{lane="bulk"}', "hub_outbox_lane_age_seconds",
                 "hub_sends_in_flight", "hub_provider_latency_seconds",
                 "hub_rate_limit_wait_seconds"):
        assert name in text
    db.dispose()


def test_the_rate_limiter_hook_is_asked_before_each_call(runtime: HubRuntime) -> None:
    """The provider rate limiter (built elsewhere) plugs in through the pipeline: one token
    per provider call, and a 429's Retry-After slows its bucket."""

    class Recording:
        def __init__(self) -> None:
            self.acquired: list[str] = []
            self.penalized: list[tuple[str, float]] = []

        def acquire(self, key: str, timeout: float | None = None) -> float:
            self.acquired.append(key)
            return 0.0

        def close(self) -> None:
            pass

        def penalize(self, key: str, retry_after: float) -> None:
            self.penalized.append((key, retry_after))

    limiter = Recording()
    runtime.pipeline.rate_limiter = limiter
    sms = ScriptedAdapter(SendResult.transient("429", retry_after=0.05))
    worker = _with(runtime, sms=sms)
    _post(runtime)
    _run_until_idle(worker)
    assert limiter.acquired == ["scripted", "scripted"]
    assert limiter.penalized == [("scripted", 0.05)]


def test_a_sent_job_costs_claim_and_load_send_and_one_record_transaction(
    runtime: HubRuntime,
) -> None:
    """The claim commits with the load, and the provider's answer with the decisions and
    the job's final state: a job sent on its first channel takes three write transactions
    in all (claim + load, send record, answer + outcome), whatever else the batch holds."""
    from sqlalchemy import event as sa_event

    sms = ScriptedAdapter()
    worker = _with(runtime, sms=sms)
    _post(runtime, customer={"id": "c-1", "phone": "+48512345678"})
    commits: list[object] = []

    def count(conn: object) -> None:
        commits.append(conn)

    sa_event.listen(runtime.db.engine, "commit", count)
    try:
        assert worker.run_once() == 1
    finally:
        sa_event.remove(runtime.db.engine, "commit", count)
    assert len(sms.sent) == 1 and _decisions(runtime)[-3:] == [
        ("sms", "sent", "sent"), ("email", "skipped", "no_address"),
        ("push", "skipped", "no_address")]
    with runtime.db.sessions() as s:
        assert s.scalars(select(OutboxJob.state)).one() == "done"
    assert len(commits) == 3


def test_a_job_whose_load_fails_is_retried_alone_and_dead_lettered(runtime: HubRuntime) -> None:
    """A row the load step cannot read (here: an event whose customer lost its id) fails
    its own job as an attempt; the other jobs claimed with it are sent in the same pass,
    and the broken one ends as a dead letter instead of blocking the queue forever."""
    from sqlalchemy import update

    sms = ScriptedAdapter()
    worker = _with(runtime, sms=sms)
    _post(runtime, event_id="evt-broken", customer={"id": "c-1", "phone": "+48512345678"})
    _post(runtime, event_id="evt-fine", customer={"id": "c-2", "phone": "+48512345679"})
    with runtime.db.transaction() as s:
        broken = s.scalars(select(Event).where(Event.event_id == "evt-broken")).one()
        broken.payload = {**broken.payload, "customer": {"phone": "+48512345678"}}
    assert worker.run_once() == 2
    assert [m.address for m in sms.sent] == ["+48512345679"]
    for attempt in (1, 2, 3):
        with runtime.db.sessions() as s:
            job = s.scalars(select(OutboxJob).where(OutboxJob.event_pk == broken.id)).one()
        assert (job.attempts, job.last_error) == (attempt, "load failed: KeyError")
        assert job.lease_owner is None
        if attempt < 3:
            assert job.state == "pending"
            with runtime.db.transaction() as s:  # the backoff has passed
                s.execute(update(OutboxJob).where(OutboxJob.id == job.id)
                          .values(not_before=utcnow()))
            assert worker.run_once() == 1
    assert job.state == "dead"
    assert ("*", "failed", "dead_letter") in _decisions(runtime)
    assert len(sms.sent) == 1
