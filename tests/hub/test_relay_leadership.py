"""One active outbox relay among many processes (`hub.leadership`): the holder renews its
lease, the others stand by, a graceful stop hands the lease over at once and a dead holder's
lease is taken once it expired. Leadership only saves work: jobs stay leased one by one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from hub.dispatch import Dispatcher
from hub.events import EventIn
from hub.intake import accept
from hub.leadership import Leadership
from hub.models import OutboxJob
from tests.helpers import event, make_runtime


def test_one_holder_at_a_time_and_a_graceful_handover(database_url: str, tmp_path: Path) -> None:
    db = make_runtime(database_url, tmp_path).db
    a = Leadership(db, "outbox-relay", "a", lease_seconds=30, standby_seconds=0)
    b = Leadership(db, "outbox-relay", "b", lease_seconds=30, standby_seconds=0)
    assert a.held() and not b.held()
    assert a.held() and not b.held()  # renewing keeps it
    a.release()
    assert b.held() and not a.held()


def test_a_dead_holders_lease_is_taken_once_expired(database_url: str, tmp_path: Path) -> None:
    db = make_runtime(database_url, tmp_path).db
    dead = Leadership(db, "outbox-relay", "dead", lease_seconds=0.3, standby_seconds=0)
    alive = Leadership(db, "outbox-relay", "alive", lease_seconds=0.3, standby_seconds=0)
    assert dead.held()
    assert not alive.held()  # still valid: not taken early
    time.sleep(0.4)  # `dead` stopped renewing (killed)
    assert alive.held()
    assert not dead.held()  # back from a pause, it finds the lease gone


def test_leases_of_different_loops_are_independent(database_url: str, tmp_path: Path) -> None:
    db = make_runtime(database_url, tmp_path).db
    assert Leadership(db, "outbox-relay", "a", 30).held()
    assert Leadership(db, "something-else", "b", 30).held()


def test_only_the_leading_relay_publishes_and_a_stopped_one_hands_over(
    database_url: str, tmp_path: Path
) -> None:
    runtime = make_runtime(database_url, tmp_path, worker_poll_seconds=0.02)
    # two processes: a broker connection each
    first = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, StubBroker())
    second = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, StubBroker())
    threads = [first.start_relay()]
    time.sleep(0.3)  # the first takes the lease
    threads.append(second.start_relay())

    def owners(n: int) -> set[str]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with runtime.db.sessions() as s:
                rows = s.execute(select(OutboxJob.lease_owner)).scalars().all()
            if len(rows) == n and all(rows):
                return set(rows)  # type: ignore[arg-type]
            time.sleep(0.05)
        raise AssertionError(f"not all {n} jobs were published: {rows}")

    try:
        accept(runtime.db, "p", [EventIn.model_validate(event(f"evt-{i}", customer={
            "id": f"c-{i}", "phone": f"+4851234{i:04d}"})) for i in range(5)])
        assert owners(5) == {first.relay_name}  # the standby published nothing
        first.stop()
        threads[0].join(timeout=10)  # a graceful stop hands the lease back
        accept(runtime.db, "p", [EventIn.model_validate(event(f"evt-{i}", customer={
            "id": f"c-{i}", "phone": f"+4851234{i:04d}"})) for i in range(5, 8)])
        assert owners(8) == {first.relay_name, second.relay_name}
        with runtime.db.sessions() as s:
            later = s.scalars(select(OutboxJob.lease_owner).where(OutboxJob.id > 5)).all()
        assert set(later) == {second.relay_name}
    finally:
        first.stop()
        second.stop()
        for t in threads:
            t.join(timeout=10)
        runtime.db.dispose()


def test_stepping_down_lets_another_lead_for_a_while(database_url: str, tmp_path: Path) -> None:
    db = make_runtime(database_url, tmp_path).db
    now = [0.0]
    a = Leadership(db, "outbox-relay", "a", lease_seconds=30, standby_seconds=0,
                   clock=lambda: now[0])
    b = Leadership(db, "outbox-relay", "b", lease_seconds=30, standby_seconds=0)
    assert a.held()
    a.step_down(5)
    assert b.held()
    now[0] = 4.9
    assert not a.held()  # stays out: does not even look
    b.release()
    assert not a.held()
    now[0] = 5.0
    assert a.held()  # back in the race


class UnreachableBroker(StubBroker):
    """A broker this process cannot reach: every publish fails, as a RabbitMQ connection
    refused or reset would."""

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        raise ConnectionError("broker unreachable from this host")


class BrokerFailingAfter(StubBroker):
    """Accepts `ok` messages, then the connection drops."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        if self.ok <= 0:
            raise ConnectionError("connection reset")
        self.ok -= 1
        return super().enqueue(message, delay=delay)


def test_jobs_a_relay_failed_to_publish_are_let_go_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """The broker drops mid-pass: what went out stays leased to the relay (its consumer
    takes it over), the rest is free for the next pass, with no attempt spent."""
    runtime = make_runtime(database_url, tmp_path, worker_batch=2)
    relay = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, BrokerFailingAfter(1))
    try:
        accept(runtime.db, "p", [EventIn.model_validate(event(f"evt-{i}", customer={
            "id": f"c-{i}", "phone": f"+4851234{i:04d}"})) for i in range(5)])
        with pytest.raises(ConnectionError):
            relay.relay_once()
        with runtime.db.sessions() as s:
            rows = s.execute(select(OutboxJob.id, OutboxJob.lease_owner, OutboxJob.attempts)
                             .order_by(OutboxJob.id)).all()
        assert [(i, owner) for i, owner, _ in rows] == [
            (1, relay.relay_name), (2, relay.relay_name), (3, None), (4, None), (5, None)]
        assert {attempts for _, _, attempts in rows} == {0}
    finally:
        runtime.db.dispose()


def test_a_leader_that_cannot_publish_hands_over(database_url: str, tmp_path: Path) -> None:
    """The leading relay's broker is unreachable (a partition on its host): it steps down
    after one lease of failures and the healthy standby publishes every job at once, not
    after the jobs' own (60 s) leases expire."""
    runtime = make_runtime(database_url, tmp_path, worker_poll_seconds=0.02,
                           worker_lease_seconds=60.0)
    cut_off = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, UnreachableBroker())
    healthy_broker = StubBroker()
    healthy = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, healthy_broker)
    threads = [cut_off.start_relay()]
    time.sleep(0.3)  # the cut-off one leads
    threads.append(healthy.start_relay())
    try:
        accept(runtime.db, "p", [EventIn.model_validate(event(f"evt-{i}", customer={
            "id": f"c-{i}", "phone": f"+4851234{i:04d}"})) for i in range(5)])
        deadline = time.monotonic() + 15
        published: list[int] = []
        while time.monotonic() < deadline and len(published) < 5:
            published = sorted(i for name in healthy_broker.queues
                               for m in list(healthy_broker.queues[name].queue)
                               for i in json.loads(m)["args"][0])
            time.sleep(0.05)
        assert published == [1, 2, 3, 4, 5]
        with runtime.db.sessions() as s:
            owners = set(s.scalars(select(OutboxJob.lease_owner)))
        assert owners == {healthy.relay_name}
    finally:
        for d in (cut_off, healthy):
            d.stop()
        for t in threads:
            t.join(timeout=10)
        runtime.db.dispose()


def test_intake_wakes_the_relay_before_its_next_poll(database_url: str, tmp_path: Path) -> None:
    """On PostgreSQL the relay listens for intake's commit notice: a job is published at
    once even though the relay polls only every 5 s."""
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite intake wakes the embedded worker")
    runtime = make_runtime(database_url, tmp_path, worker_poll_seconds=5.0)
    broker = StubBroker()
    relay = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, broker)
    thread = relay.start_relay()
    try:
        time.sleep(1.0)  # it leads, found nothing and waits out its poll
        posted = time.monotonic()
        accept(runtime.db, "p", [EventIn.model_validate(event("evt-now"))])
        published: list[int] = []
        while not published and time.monotonic() - posted < 4:
            published = [i for name in broker.queues for m in list(broker.queues[name].queue)
                         for i in json.loads(m)["args"][0]]
            time.sleep(0.01)
        assert published == [1]
        assert time.monotonic() - posted < 1.0
    finally:
        relay.stop()
        thread.join(timeout=10)
        runtime.db.dispose()
