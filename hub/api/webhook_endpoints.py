"""`/v1/webhook-endpoints`: a producer's receivers of notification status changes, their
delivery log and manual replay. Endpoints belong to the key's (tenant, producer); another
producer's endpoint answers 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hub.api.auth import require
from hub.api.problems import Problem
from hub.db import utcnow
from hub.keys import Principal, Scope
from hub.models import WebhookDelivery, WebhookEndpoint
from hub.webhook_sender import describe
from hub.webhook_url_check import WebhookUrlRefused, check_webhook_url
from hub.webhooks_out import ALL, EVENT_TYPES, new_id, new_secret

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])
Writer = Annotated[Principal, Depends(require(Scope.WEBHOOKS_WRITE))]
EventTypeName = Literal["*", "notification.sent", "notification.delivered",
                        "notification.failed", "notification.clicked",
                        "notification.unsubscribed", "feedback.received"]


class EndpointIn(BaseModel):
    """A receiver to register: an https URL and the event types it wants."""

    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=8, max_length=2048)]
    event_types: Annotated[list[EventTypeName], Field(min_length=1, max_length=10)] = [ALL]
    description: Annotated[str | None, Field(max_length=200)] = None


def _endpoint_json(row: WebhookEndpoint, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.public_id, "url": row.url, "event_types": row.event_types,
        "description": row.description, "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "consecutive_failures": row.consecutive_failures,
        "created_at": row.created_at.isoformat(),
    }
    if secret:
        out["secret"] = row.secret  # shown once, at creation
    return out


def _db(request: Request) -> Any:
    return request.app.state.runtime.db


def _owned(session: Session, principal: Principal, public_id: str) -> WebhookEndpoint:
    row = session.scalar(select(WebhookEndpoint).where(
        WebhookEndpoint.public_id == public_id, WebhookEndpoint.tenant == principal.tenant,
        WebhookEndpoint.producer == principal.producer, WebhookEndpoint.deleted_at.is_(None)))
    if row is None:
        raise Problem(404, "not-found", f"No webhook endpoint {public_id!r}.")
    return row


@router.post("", status_code=201)
async def create_endpoint(body: EndpointIn, request: Request, principal: Writer
                          ) -> dict[str, Any]:
    """Registers an endpoint; the answer carries its signing secret (`whsec_...`) once."""
    settings = request.app.state.runtime.settings
    try:
        await run_in_threadpool(check_webhook_url, body.url, settings.webhooks_allow_loopback)
    except WebhookUrlRefused as exc:
        raise Problem(422, "webhook-url-refused", f"url: {exc}.") from exc
    types = [ALL] if ALL in body.event_types else sorted(set(body.event_types))

    def create() -> dict[str, Any]:
        with _db(request).transaction() as session:
            row = WebhookEndpoint(public_id=new_id("ep"), tenant=principal.tenant,
                                  producer=principal.producer, url=body.url, event_types=types,
                                  secret=new_secret(), description=body.description,
                                  enabled=True, consecutive_failures=0)
            session.add(row)
            session.flush()
            return _endpoint_json(row, secret=True)

    return await run_in_threadpool(create)


@router.get("")
def list_endpoints(request: Request, principal: Writer) -> dict[str, Any]:
    """The producer's endpoints (without secrets) and the event types one may choose."""
    with _db(request).sessions() as session:
        rows = session.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.tenant == principal.tenant,
            WebhookEndpoint.producer == principal.producer,
            WebhookEndpoint.deleted_at.is_(None)).order_by(WebhookEndpoint.id))
        return {"endpoints": [_endpoint_json(r) for r in rows],
                "event_types": [ALL, *EVENT_TYPES]}


@router.get("/{endpoint_id}")
def get_endpoint(endpoint_id: str, request: Request, principal: Writer) -> dict[str, Any]:
    """One endpoint (without its secret)."""
    with _db(request).sessions() as session:
        return _endpoint_json(_owned(session, principal, endpoint_id))


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
def delete_endpoint(endpoint_id: str, request: Request, principal: Writer) -> Response:
    """Stops the endpoint; its pending messages are cancelled (the log stays)."""
    with _db(request).transaction() as session:
        row = _owned(session, principal, endpoint_id)
        row.deleted_at, row.enabled = utcnow(), False
        session.execute(update(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == row.id, WebhookDelivery.state == "pending")
            .values(state="cancelled", settled_at=utcnow()))
    return Response(status_code=204)


@router.post("/{endpoint_id}/enable")
def enable_endpoint(endpoint_id: str, request: Request, principal: Writer) -> dict[str, Any]:
    """Re-enables an endpoint that was disabled for failing; its pending messages resume."""
    with _db(request).transaction() as session:
        row = _owned(session, principal, endpoint_id)
        row.enabled, row.disabled_reason = True, None
        row.consecutive_failures, row.failing_since = 0, None
        return _endpoint_json(row)


@router.get("/{endpoint_id}/deliveries")
def list_deliveries(
    endpoint_id: str, request: Request, principal: Writer,
    state: Literal["pending", "succeeded", "failed", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="Page: ids below this")] = None,
) -> dict[str, Any]:
    """The endpoint's messages, newest first, each with its attempts log."""
    with _db(request).sessions() as session:
        row = _owned(session, principal, endpoint_id)
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id)
        if state is not None:
            query = query.where(WebhookDelivery.state == state)
        if before is not None:
            query = query.where(WebhookDelivery.id < before)
        found = list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))
        return {"deliveries": [describe(d) for d in found],
                "next_before": found[-1].id if len(found) == limit else None}


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay", status_code=202)
def replay_delivery(endpoint_id: str, delivery_id: int, request: Request, principal: Writer
                    ) -> dict[str, Any]:
    """Sends a message again (same `webhook-id`, so a receiver can tell it is a repeat)."""
    with _db(request).transaction() as session:
        endpoint = _owned(session, principal, endpoint_id)
        if not endpoint.enabled:
            raise Problem(409, "endpoint-disabled", "The endpoint is disabled: enable it first "
                          f"(POST /v1/webhook-endpoints/{endpoint_id}/enable).")
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.endpoint_id != endpoint.id:
            raise Problem(404, "not-found", f"No delivery {delivery_id} for this endpoint.")
        now: datetime = utcnow()
        delivery.state, delivery.next_attempt_at, delivery.settled_at = "pending", now, None
        delivery.lease_owner, delivery.lease_until = None, None
        delivery.log = [*(delivery.log or []), {"at": now.isoformat(), "replay": True}]
        return describe(delivery)
