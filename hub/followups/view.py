"""The timers of an event as `GET /v1/events/{id}` shows them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import Event, FollowupTimer


def timers_of(session: Session, event_pk: int) -> list[dict[str, Any]]:
    """Every timer the event started: scheduled, cancelled (by which event), fired (as which
    event) or skipped, with the reason."""
    timers = session.scalars(select(FollowupTimer).where(
        FollowupTimer.trigger_event_pk == event_pk).order_by(FollowupTimer.fire_at,
                                                             FollowupTimer.id)).all()
    related = {t.resolved_by_event_pk for t in timers} | {t.fired_event_pk for t in timers}
    related.discard(None)
    ids = dict(session.execute(select(Event.id, Event.event_id).where(
        Event.id.in_(related))).tuples().all()) if related else {}
    return [{"rule": t.rule, "type": t.send_type, "offset": t.offset,
             "fire_at": t.fire_at.isoformat(), "state": t.state, "reason": t.reason,
             "detail": t.detail,
             "cancelled_by": ids.get(t.resolved_by_event_pk) if t.resolved_by_event_pk
             else None,
             "event_id": ids.get(t.fired_event_pk) if t.fired_event_pk else None}
            for t in timers]
