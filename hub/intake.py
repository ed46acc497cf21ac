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

from hub.db import Database, utcnow
from hub.events import EventIn
from hub.lanes import lane_of
from hub.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE
from hub.models import DEFAULT_TENANT, Event, OutboxJob


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


def _accept_once(db: Database, producer: str, events: Sequence[EventIn], tenant: str
                 ) -> list[IntakeResult]:
    staged: dict[str, dict[str, Any]] = {}
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
        earlier = staged.setdefault(ev.event_id, row)
        if earlier["payload_hash"] != row["payload_hash"]:
            conflicts.append(ev.event_id)
    if conflicts:
        raise IdempotencyConflict(sorted(set(conflicts)))
    with db.transaction() as session:
        inserted = dict(
            (event_id, pk)
            for pk, event_id in session.connection().execute(
                _insert_ignoring_duplicates(db), list(staged.values())
            )
        )
        existing = {}
        if len(inserted) < len(staged):
            existing = {
                row.event_id: row
                for row in session.execute(
                    select(Event.event_id, Event.payload_hash, Event.state).where(
                        Event.producer == producer,
                        Event.event_id.in_([e for e in staged if e not in inserted]),
                    )
                )
            }
            conflicts = [e for e, row in existing.items()
                         if row.payload_hash != staged[e]["payload_hash"]]
            if conflicts:  # raising rolls back this batch's inserts too
                raise IdempotencyConflict(sorted(conflicts))
        if inserted:
            now = utcnow()
            lanes = {ev.event_id: lane_of(ev.event_type, staged[ev.event_id]["payload"], now)
                     for ev in events}
            session.connection().execute(
                insert(OutboxJob.__table__),
                [{"event_pk": pk, "state": "pending", "not_before": now, "attempts": 0,
                  "lane": str(lanes[event_id]), "created_at": now, "updated_at": now}
                 for event_id, pk in inserted.items()],
            )
    for event_id in inserted:
        EVENTS_ACCEPTED.labels(staged[event_id]["type"]).inc()
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
