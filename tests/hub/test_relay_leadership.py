"""One active outbox relay among many processes (`hub.leadership`): the holder renews its
lease, the others stand by, a graceful stop hands the lease over at once and a dead holder's
lease is taken once it expired. Leadership only saves work: jobs stay leased one by one."""

from __future__ import annotations

import time
from pathlib import Path

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
