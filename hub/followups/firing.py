"""Turning due timers into ordinary events + outbox jobs, exactly once.

A timer is claimed under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), then fired in
one transaction: `scheduled → fired` (re-checked on the row, so a cancel that committed
first wins), the new event inserted with a deterministic id (`hub-rules`,
`<rule>:<trigger pk>:<offset>`, ON CONFLICT DO NOTHING) and its outbox job. A crash before
the commit leaves the timer scheduled and its lease expires; after the commit it is fired.
"""

from __future__ import annotations

import copy
import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, or_, select, update

from hub import failpoints
from hub.background import PollingLoop
from hub.db import Database, utcnow
from hub.events import EventIn
from hub.followups.schedule import TimerReason, TimerState
from hub.intake import payload_hash
from hub.lanes import lane_of
from hub.logs import get_logger
from hub.models import Event, FollowupTimer, OutboxJob

log = get_logger("followups")
PRODUCER = "hub-rules"
# Crash points (HUB_FAILPOINT) for the kill -9 tests: inside the firing transaction, and
# just after it committed.
FIRING, FIRED = "followup_firing", "followup_fired"



def claim_due(db: Database, owner: str, now: datetime, limit: int = 50,
              lease_seconds: float = 60.0) -> list[int]:
    """Leases up to `limit` due timers to `owner`; no two live processes hold the same."""
    free = or_(FollowupTimer.lease_until.is_(None), FollowupTimer.lease_until < now)
    with db.transaction() as session:
        due = (select(FollowupTimer.id)
               .where(FollowupTimer.state == TimerState.SCHEDULED,
                      FollowupTimer.fire_at <= now, free)
               .order_by(FollowupTimer.fire_at, FollowupTimer.id).limit(limit))
        if db.dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = list(session.scalars(due))
        if not ids:
            return []
        claimed = session.scalars(
            update(FollowupTimer)
            .where(FollowupTimer.id.in_(ids), FollowupTimer.state == TimerState.SCHEDULED, free)
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
            .returning(FollowupTimer.id))
        return sorted(claimed)


def follow_up_payload(timer: FollowupTimer, trigger: dict[str, Any], trigger_pk: int
                      ) -> dict[str, Any]:
    """The new event: the trigger's parcel and data, the customer by id only (inline details
    were applied by the trigger and must not be replayed later), and what the template needs
    to word it (`hours_left` / `days_left` for reminders before the anchor)."""
    payload = copy.deepcopy(trigger)
    data = dict(payload.get("data") or {})
    data["followup"] = {"rule": timer.rule, "offset": timer.offset,
                        "of": trigger.get("event_id")}
    if timer.offset.startswith("-") and timer.anchor_at is not None:
        left = timer.anchor_at - timer.fire_at
        data["hours_left"] = round(left.total_seconds() / 3600)
        data["days_left"] = left.days
    payload.update(event_id=timer_event_id(timer.rule, trigger_pk, timer.offset),
                   type=timer.send_type, occurred_at=timer.fire_at.isoformat(),
                   customer={"id": trigger["customer"]["id"]}, data=data)
    return payload


def timer_event_id(rule: str, trigger_pk: int, offset: str) -> str:
    """The deterministic id of a fired timer's event."""
    return f"{rule}:{trigger_pk}:{offset}"


def fire_one(db: Database, timer_id: int, owner: str, now: datetime) -> str | None:
    """Fires one leased timer; returns its final state (None if it was no longer ours)."""
    with db.transaction() as session:
        timer = session.get(FollowupTimer, timer_id)
        if timer is None or timer.state != TimerState.SCHEDULED or timer.lease_owner != owner:
            return None
        trigger = session.get(Event, timer.trigger_event_pk)
        verdict = _unfireable(timer, trigger, now)
        if verdict is not None:
            state, reason, detail = verdict
            timer.state, timer.reason, timer.detail = state, reason, detail
            timer.lease_owner = timer.lease_until = None
            return str(state)
        assert trigger is not None and trigger.payload is not None
        payload = follow_up_payload(timer, trigger.payload, trigger.id)
        try:
            event = EventIn.model_validate(payload)
        except ValidationError as exc:
            timer.state, timer.reason = TimerState.FAILED, TimerReason.INVALID
            timer.detail = "; ".join(e["msg"] for e in exc.errors())[:500]
            return str(timer.state)
        # Re-checked on the row: a cancel committed since the claim makes this a no-op.
        won = session.scalar(update(FollowupTimer).where(
            FollowupTimer.id == timer.id, FollowupTimer.state == TimerState.SCHEDULED)
            .values(state=TimerState.FIRED, lease_owner=None, lease_until=None)
            .returning(FollowupTimer.id))
        if not won:
            return None
        failpoints.reach(FIRING)
        fired_pk = _insert_event(db, session, trigger, event, now)
        session.execute(update(FollowupTimer).where(FollowupTimer.id == timer.id)
                        .values(fired_event_pk=fired_pk, detail=event.event_id))
    failpoints.reach(FIRED)
    log.info("followup_fired", timer=timer_id, rule=timer.rule, offset=timer.offset,
             event_pk=fired_pk)
    return str(TimerState.FIRED)


def _unfireable(timer: FollowupTimer, trigger: Event | None, now: datetime
                ) -> tuple[TimerState, TimerReason, str] | None:
    if trigger is None or trigger.payload is None:  # erased (or purged) since scheduling
        return TimerState.CANCELLED, TimerReason.ERASED, "the triggering event keeps no data"
    if timer.anchor_at is not None and timer.offset.startswith("-") and now >= timer.anchor_at:
        return (TimerState.SKIPPED, TimerReason.TOO_LATE,
                f"fired after {timer.anchor_at.isoformat()}, which it was meant to precede")
    return None


def _insert_event(db: Database, session: Any, trigger: Event, event: EventIn,
                  now: datetime) -> int:
    """Inserts the follow-up event and its job once, whoever fires it."""
    from hub.intake import _insert_ignoring_duplicates

    payload = event.canonical()
    row = {"tenant": trigger.tenant, "producer": PRODUCER, "event_id": event.event_id,
           "type": event.type, "category": event.event_type.category.value,
           "customer_id": event.customer.id,
           "tracking_number": event.parcel.tracking_number if event.parcel else None,
           "occurred_at": event.occurred_at, "received_at": now,
           "payload_hash": payload_hash(payload), "payload": payload, "state": "accepted"}
    inserted = session.connection().execute(_insert_ignoring_duplicates(db), [row]).all()
    if not inserted:  # fired before by a process that lost its lease: keep that one
        pk: int = session.scalar(select(Event.id).where(Event.producer == PRODUCER,
                                                        Event.event_id == event.event_id))
        return pk
    pk = inserted[0][0]
    stamp = utcnow()
    lane = lane_of(event.event_type, payload, stamp)  # the priority lane intake would give
    session.execute(insert(OutboxJob), [{"event_pk": pk, "state": "pending", "not_before": stamp,
                                         "attempts": 0, "lane": str(lane), "created_at": stamp,
                                         "updated_at": stamp}])
    return pk


def fire_due(db: Database, now: datetime | None = None, owner: str | None = None,
             limit: int = 50, lease_seconds: float = 60.0) -> int:
    """Claims and fires the timers due at `now`; returns how many became events."""
    now = now or utcnow()
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    fired = 0
    for timer_id in claim_due(db, owner, now, limit, lease_seconds):
        fired += fire_one(db, timer_id, owner, now) == TimerState.FIRED
    return fired


class FollowupLoop(PollingLoop):
    """Fires due timers every `poll` seconds in a thread of the worker or relay process."""

    kind = "followup"
    log = log

    def pass_once(self) -> int:
        return fire_due(self.db, self.clock(), self.owner, lease_seconds=self.lease_seconds)


start_loop = FollowupLoop.start
