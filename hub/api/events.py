"""Event intake and the read-back of what was decided and sent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from hub.api.auth import require
from hub.api.problems import Problem
from hub.event_catalog import types_not_for
from hub.events import EventIn
from hub.followups.firing import PRODUCER as FOLLOWUP_PRODUCER
from hub.followups.view import timers_of
from hub.intake import IdempotencyConflict, IntakeResult, IntakeStatus
from hub.keys import Principal, Scope
from hub.models import Decision, Event, Notification

router = APIRouter(prefix="/v1", tags=["events"])
EventId = Annotated[str, Path(min_length=1, max_length=128)]


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=500)


class IntakeReply(BaseModel):
    event_id: str
    status: IntakeStatus
    state: str
    href: str


class BatchReply(BaseModel):
    accepted: int
    duplicates: int
    results: list[IntakeReply]


def _reply(result: IntakeResult) -> IntakeReply:
    return IntakeReply(event_id=result.event_id, status=result.status, state=result.state,
                       href=f"/v1/events/{result.event_id}")


def _accept(request: Request, who: Principal, events: list[EventIn]) -> list[IntakeResult]:
    runtime = request.app.state.runtime
    reserved = types_not_for(who.tenant, [e.type for e in events])
    if reserved:  # a tenant's own event types (HUB_EVENT_TYPES_FILE `tenants`)
        raise Problem(422, "validation", f"Event type(s) not available to this "
                      f"tenant: {', '.join(reserved)}",
                      errors=[{"path": "type", "message": f"unknown event type {t!r}"}
                              for t in reserved])
    try:
        results = runtime.intake.accept(who.producer, events, tenant=who.tenant)
    except IdempotencyConflict as exc:
        raise Problem(409, "idempotency-conflict",
                      f"Event id(s) already used with different content: {exc}",
                      event_ids=exc.event_ids) from exc
    if runtime.worker is not None and any(r.status == "accepted" for r in results):
        runtime.worker.wake()
    return results


@router.post("/events", status_code=202, response_model=IntakeReply,
             responses={200: {"description": "Already accepted earlier (same content)"},
                        409: {"description": "Event id reused with other content"}})
def post_event(
    event: EventIn, request: Request, response: Response,
    who: Principal = Depends(require(Scope.EVENTS_WRITE)),
) -> IntakeReply:
    """Accepts one event; it is durable when this returns 202 (or 200 for a re-post)."""
    (result,) = _accept(request, who, [event])
    if result.status is IntakeStatus.DUPLICATE:
        response.status_code = 200
    return _reply(result)


@router.post("/events/batch", status_code=202, response_model=BatchReply)
def post_batch(
    batch: EventBatch, request: Request, response: Response,
    who: Principal = Depends(require(Scope.EVENTS_WRITE)),
) -> BatchReply:
    """Accepts up to 500 events in one transaction: all are stored, or none."""
    results = _accept(request, who, batch.events)
    accepted = sum(r.status is IntakeStatus.ACCEPTED for r in results)
    if not accepted:
        response.status_code = 200
    return BatchReply(accepted=accepted, duplicates=len(results) - accepted,
                      results=[_reply(r) for r in results])


def _notification(row: Notification) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_type": row.event_type,
        "customer_id": row.customer_id,
        "parcel": row.tracking_number,
        "channel": row.channel,
        "status": row.status,
        "locale": row.locale,
        "provider_message_id": row.provider_message_id,
        "error": row.error,
        "content": row.content,
        "history": row.history,
        "created_at": row.created_at.isoformat(),
    }


@router.get("/events/{event_id}")
def get_event(
    event_id: EventId, request: Request, who: Principal = Depends(require(Scope.EVENTS_READ)),
) -> dict[str, Any]:
    """The event, its state and every decision taken for it (who got what, and why not)."""
    with request.app.state.runtime.db.sessions() as session:
        event = session.scalar(
            select(Event).where(Event.producer == who.producer, Event.event_id == event_id)
        )
        if event is None:  # a follow-up the hub started itself, for this tenant
            event = session.scalar(select(Event).where(
                Event.producer == FOLLOWUP_PRODUCER, Event.tenant == who.tenant,
                Event.event_id == event_id))
        if event is None:
            raise Problem(404, "not-found", f"No event {event_id!r} from this producer.")
        decisions = session.scalars(
            select(Decision).where(Decision.event_pk == event.id).order_by(Decision.id)
        ).all()
        notes = session.scalars(
            select(Notification).where(Notification.event_pk == event.id)
            .order_by(Notification.id)
        ).all()
        return {
            "event_id": event.event_id,
            "type": event.type,
            "category": event.category,
            "customer_id": event.customer_id,
            "parcel": event.tracking_number,
            "occurred_at": event.occurred_at.isoformat(),
            "received_at": event.received_at.isoformat(),
            "state": event.state,
            "payload": event.payload,
            "decisions": [
                {"channel": d.channel, "outcome": d.outcome, "reason": d.reason,
                 "detail": d.detail, "at": d.created_at.isoformat()}
                for d in decisions
            ],
            "notifications": [_notification(n) for n in notes],
            "followups": timers_of(session, event.id),
        }


@router.get("/notifications")
def list_notifications(
    request: Request,
    customer_id: str | None = None,
    parcel: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[int | None, Query(ge=1, le=2**31 - 1,  # ids are 32-bit INTEGER on PostgreSQL
                                       description="Cursor: `next` of the previous page")] = None,
    who: Principal = Depends(require(Scope.EVENTS_READ)),
) -> dict[str, Any]:
    """What was sent, newest first, filtered by customer, parcel or status; keyset-paged."""
    query = (
        select(Notification).join(Event, Event.id == Notification.event_pk)
        .where(Event.producer == who.producer)
    )
    if customer_id:
        query = query.where(Notification.customer_id == customer_id)
    if parcel:
        query = query.where(Notification.tracking_number == parcel)
    if status:
        query = query.where(Notification.status == status)
    if after is not None:
        query = query.where(Notification.id < after)
    with request.app.state.runtime.db.sessions() as session:
        rows = session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return {
        "items": [_notification(n) for n in page],
        "next": page[-1].id if len(rows) > limit else None,
    }
