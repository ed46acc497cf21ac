"""Broker redelivery and the relay: a redelivered message never runs a postponed job early,
a run counts its attempt, and publishing counts none."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select, update

from hub.db import utcnow
from hub.dispatch import Dispatcher
from hub.events import EventIn
from hub.intake import accept
from hub.lanes import Lane
from hub.models import OutboxJob
from tests.helpers import event, make_runtime, read_outbox


def test_redelivered_message_for_a_postponed_job_does_not_run_early(
    database_url: str, tmp_path: Path
) -> None:
    runtime = make_runtime(database_url, tmp_path)
    accept(runtime.db, "p", [EventIn.model_validate(event("evt-late"))])
    broker = StubBroker()
    dispatcher = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, broker)
    assert dispatcher.relay_once() == 1
    with runtime.db.sessions() as s:
        job = s.scalars(select(OutboxJob)).one()
    assert (job.attempts, job.lane) == (0, "urgent")  # publishing spends no attempt
    (data,) = list(broker.queues[f"{runtime.settings.broker_queue}.urgent"].queue)
    message = Message.decode(data)
    # the job ran once and was postponed (a retry), then the broker redelivers the message
    later = utcnow() + timedelta(minutes=5)
    with runtime.db.transaction() as s:
        s.execute(update(OutboxJob).values(not_before=later, lease_owner=None, lease_until=None,
                                           attempts=1))
    actor = dispatcher.actors[Lane.URGENT]
    actor.fn(*message.args)  # the redelivered message
    dispatcher.close_engine(timeout=5)
    with runtime.db.sessions() as s:
        job = s.scalars(select(OutboxJob)).one()
    assert read_outbox(tmp_path / "outbox.jsonl") == []  # not run early
    assert (job.state, job.attempts, job.lease_owner) == ("pending", 1, None)
    # once due, the relay publishes it again and the run counts its attempt
    with runtime.db.transaction() as s:
        s.execute(update(OutboxJob).values(not_before=utcnow() - timedelta(seconds=1)))
    dispatcher = Dispatcher(runtime.db, runtime.pipeline, runtime.settings, StubBroker())
    assert dispatcher.relay_once() == 1
    dispatcher.actors[Lane.URGENT].fn([job.id])
    dispatcher.close_engine(timeout=10)
    with runtime.db.sessions() as s:
        job = s.scalars(select(OutboxJob)).one()
    assert (job.state, job.attempts) == ("done", 2)
    assert len(read_outbox(tmp_path / "outbox.jsonl")) == 1
    runtime.stop()
