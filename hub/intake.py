"""Event intake: each accepted event is committed together with its outbox job."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db import Database, utcnow
from hub.events import EventIn
from hub.followups.schedule import Accepted, on_intake
from hub.grouping import Grouped
from hub.lanes import lane_of
from hub.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, INTAKE_GROUP
from hub.models import DEFAULT_TENANT, Event, OutboxJob
from hub.outbox_signal import announce


class IntakeStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class IntakeResult:
    event_id: str
    status: IntakeStatus
    state: str


class IdempotencyConflict(Exception):
    """The same event ids were posted before with different content."""

    def __init__(self, event_ids: list[str]) -> None:
        super().__init__(", ".join(event_ids))
        self.event_ids = event_ids


def payload_hash(payload: dict[str, Any]) -> str:
    """Stable hash of an event's content, to tell a re-post from a conflicting one."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def accept(db: Database, producer: str, events: Sequence[EventIn], *,
           tenant: str = DEFAULT_TENANT) -> list[IntakeResult]:
    """Stores new events of the tenant's producer with their jobs in one transaction; all or
    nothing. The tenant decides whose customer the event is about.

    Re-posted events (same id, same content) are answered from the store; the same id with
    other content raises IdempotencyConflict and nothing of the batch is written.
    """
    for attempt in range(3):
        try:
            return _accept_once(db, producer, events, tenant)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _insert_ignoring_duplicates(db: Database) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING (compiled once, run as executemany)."""
    dialect_insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
    table = Event.__table__
    return (
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=["producer", "event_id"])
        .returning(table.c.id, table.c.event_id)
    )


@dataclass
class _Staged:
    """One request's events, checked against each other, as rows ready to insert."""

    producer: str
    tenant: str
    events: Sequence[EventIn]
    rows: dict[str, dict[str, Any]]


def _stage(producer: str, events: Sequence[EventIn], tenant: str) -> _Staged:
    rows: dict[str, dict[str, Any]] = {}
    conflicts: list[str] = []
    for ev in events:
        payload = ev.canonical()
        row = {
            "tenant": tenant,
            "producer": producer,
            "event_id": ev.event_id,
            "type": ev.type,
            "category": ev.event_type.category.value,
            "customer_id": ev.customer.id,
            "tracking_number": ev.parcel.tracking_number if ev.parcel else None,
            "occurred_at": ev.occurred_at,
            "received_at": utcnow(),
            "payload_hash": payload_hash(payload),
            "payload": payload,
            "state": "accepted",
        }
        earlier = rows.setdefault(ev.event_id, row)
        if earlier["payload_hash"] != row["payload_hash"]:
            conflicts.append(ev.event_id)
    if conflicts:
        raise IdempotencyConflict(sorted(set(conflicts)))
    return _Staged(producer, tenant, events, rows)


def _accept_once(db: Database, producer: str, events: Sequence[EventIn], tenant: str
                 ) -> list[IntakeResult]:
    staged = _stage(producer, events, tenant)
    with db.transaction() as session:
        inserted, existing = _write(session, db, staged)
        _plan_followups(session, [(staged, inserted)])
    return _results(staged, inserted, existing)


def _write(session: Session, db: Database, staged: _Staged
           ) -> tuple[dict[str, int], dict[str, Any]]:
    """Inserts one request's new events and their jobs in the caller's transaction (the
    caller then plans their follow-ups); returns (inserted event id → pk, earlier event id →
    row). Raises IdempotencyConflict."""
    producer, rows = staged.producer, staged.rows
    inserted = dict(
        (event_id, pk)
        for pk, event_id in session.connection().execute(
            _insert_ignoring_duplicates(db), list(rows.values())
        )
    )
    existing = {}
    if len(inserted) < len(rows):
        existing = {
            row.event_id: row
            for row in session.execute(
                select(Event.event_id, Event.payload_hash, Event.state).where(
                    Event.producer == producer,
                    Event.event_id.in_([e for e in rows if e not in inserted]),
                )
            )
        }
        conflicts = [e for e, row in existing.items()
                     if row.payload_hash != rows[e]["payload_hash"]]
        if conflicts:  # raising rolls back the transaction's inserts too
            raise IdempotencyConflict(sorted(conflicts))
    if inserted:
        now = utcnow()
        lanes = {ev.event_id: lane_of(ev.event_type, rows[ev.event_id]["payload"], now)
                 for ev in staged.events}
        session.connection().execute(
            insert(OutboxJob.__table__),
            [{"event_pk": pk, "state": "pending", "not_before": now, "attempts": 0,
              "lane": str(lanes[event_id]), "created_at": now, "updated_at": now}
             for event_id, pk in inserted.items()],
        )
        announce(session)  # the relay wakes when this commits (hub.outbox_signal)
    return inserted, existing


def _plan_followups(session: Session, written: list[tuple[_Staged, dict[str, int]]]) -> None:
    """Follow-up timers of the newly inserted events, scheduled or cancelled in the same
    transaction, all requests of a group at once (their loads are shared)."""
    accepted = sorted((Accepted(pk, staged.rows[e]) for staged, inserted in written
                       for e, pk in inserted.items()), key=lambda a: a.pk)
    if accepted:
        on_intake(session, accepted)


def _results(staged: _Staged, inserted: dict[str, int], existing: dict[str, Any]
             ) -> list[IntakeResult]:
    """The reply per posted event, once its transaction committed."""
    for event_id in inserted:
        EVENTS_ACCEPTED.labels(staged.rows[event_id]["type"]).inc()
    EVENTS_DUPLICATE.inc(len(existing))
    results, seen = [], set()
    for ev in staged.events:
        if ev.event_id in existing:
            state = existing[ev.event_id].state
            results.append(IntakeResult(ev.event_id, IntakeStatus.DUPLICATE, state))
        elif ev.event_id in seen:  # repeated inside this batch
            results.append(IntakeResult(ev.event_id, IntakeStatus.DUPLICATE, "accepted"))
        else:
            results.append(IntakeResult(ev.event_id, IntakeStatus.ACCEPTED, "accepted"))
        seen.add(ev.event_id)
    return results


@dataclass
class _Waiting:
    staged: _Staged
    results: list[IntakeResult] | None = None
    error: BaseException | None = None


class GroupIntake:
    """Group commit for the API: requests that arrive while a transaction is being committed
    wait, then share the next one (one durable commit — an fsync — for many requests).

    The first waiting request leads (`hub.grouping`): it writes every waiting request's
    events in one transaction and wakes the others with their results. A request that fails on its own
    (an id reused with other content) must not fail its neighbours: then the group is
    rolled back and each request is committed alone. Each reply is sent only after the
    commit that holds its events, so a 202 still means durable.
    """

    def __init__(self, db: Database, max_events: int = 1000) -> None:
        self.db = db
        self._grouped = Grouped(self._commit, size=lambda w: len(w.staged.rows),
                                max_size=max_events)

    def accept(self, producer: str, events: Sequence[EventIn], *,
               tenant: str = DEFAULT_TENANT) -> list[IntakeResult]:
        me = _Waiting(_stage(producer, events, tenant))
        self._grouped(me)
        if me.error is not None:
            raise me.error
        if me.results is None:
            raise RuntimeError("intake group ended without a result")
        return me.results

    def _commit(self, group: list[_Waiting]) -> None:
        INTAKE_GROUP.observe(len(group))
        if len(group) > 1:
            try:
                with self.db.transaction() as session:
                    written = [_write(session, self.db, w.staged) for w in group]
                    _plan_followups(session, [(w.staged, inserted) for w, (inserted, _)
                                              in zip(group, written, strict=True)])
            except (IdempotencyConflict, IntegrityError):
                pass  # one request's problem: commit each alone below
            except Exception as exc:  # the store is down: every request gets the error
                for w in group:
                    w.error = exc
                return
            else:
                for w, (inserted, existing) in zip(group, written, strict=True):
                    w.results = _results(w.staged, inserted, existing)
                return
        for w in group:
            try:
                w.results = accept(self.db, w.staged.producer, w.staged.events,
                                   tenant=w.staged.tenant)
            except Exception as exc:
                w.error = exc
