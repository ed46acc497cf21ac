"""Event intake: each accepted event is committed together with its outbox job."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.db import Database
from hub.events import EventIn
from hub.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE
from hub.models import Event, OutboxJob


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


def accept(db: Database, producer: str, events: Sequence[EventIn]) -> list[IntakeResult]:
    """Stores new events with their jobs in one transaction; all or nothing.

    Re-posted events (same id, same content) are answered from the store; the same id with
    other content raises IdempotencyConflict and nothing of the batch is written.
    """
    for attempt in range(3):
        try:
            return _accept_once(db, producer, events)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _accept_once(db: Database, producer: str, events: Sequence[EventIn]) -> list[IntakeResult]:
    staged: dict[str, tuple[EventIn, dict[str, Any], str]] = {}
    conflicts: list[str] = []
    for ev in events:
        payload = ev.canonical()
        digest = payload_hash(payload)
        if ev.event_id in staged and staged[ev.event_id][2] != digest:
            conflicts.append(ev.event_id)
        staged.setdefault(ev.event_id, (ev, payload, digest))
    with db.transaction() as session:
        existing = {
            row.event_id: row
            for row in session.execute(
                select(Event.event_id, Event.payload_hash, Event.state).where(
                    Event.producer == producer, Event.event_id.in_(list(staged))
                )
            )
        }
        conflicts += [eid for eid, row in existing.items() if row.payload_hash != staged[eid][2]]
        if conflicts:
            raise IdempotencyConflict(sorted(set(conflicts)))
        new = [
            Event(
                producer=producer,
                event_id=ev.event_id,
                type=ev.type,
                category=ev.event_type.category,
                customer_id=ev.customer.id,
                tracking_number=ev.parcel.tracking_number if ev.parcel else None,
                occurred_at=ev.occurred_at,
                payload_hash=digest,
                payload=payload,
            )
            for eid, (ev, payload, digest) in staged.items()
            if eid not in existing
        ]
        session.add_all(new)
        session.flush()
        session.add_all(OutboxJob(event_pk=row.id) for row in new)
    for row in new:
        EVENTS_ACCEPTED.labels(row.type).inc()
    EVENTS_DUPLICATE.inc(len(existing))
    results, seen = [], set()
    for ev in events:
        if ev.event_id in existing:
            state = existing[ev.event_id].state
            results.append(IntakeResult(ev.event_id, IntakeStatus.DUPLICATE, state))
        elif ev.event_id in seen:  # repeated inside this batch
            results.append(IntakeResult(ev.event_id, IntakeStatus.DUPLICATE, "accepted"))
        else:
            results.append(IntakeResult(ev.event_id, IntakeStatus.ACCEPTED, "accepted"))
        seen.add(ev.event_id)
    return results
