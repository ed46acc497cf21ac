"""Outgoing webhooks: producers' endpoints and the durable outbox of status-change messages.

`record_status_changes` is the ONE place a status change becomes webhook messages. It is
called in the transaction that changes the status, so a message exists if and only if the
change was committed; hub.webhook_sender delivers them (Standard Webhooks signatures).

Messages carry ids only (notification id, the producer's event id, type, channel, status,
score): no address, name or tracking number, so an erasure has nothing to scrub here.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.logs import get_logger
from hub.models import Event, Notification, WebhookDelivery, WebhookEndpoint

log = get_logger("webhooks_out")

# Notification statuses (and feedback) → webhook event types; others (opened, complained,
# retry, sending...) are not announced.
STATUS_TYPES = {
    "sent": "notification.sent",
    "delivered": "notification.delivered",
    "failed": "notification.failed",
    "bounced": "notification.failed",
    "clicked": "notification.clicked",
    "unsubscribed": "notification.unsubscribed",
    "feedback_received": "feedback.received",
}
EVENT_TYPES = tuple(sorted(set(STATUS_TYPES.values())))


class NotificationLike(Protocol):
    """What a status change needs of a send record (a Notification row or a NotificationRef)."""

    @property
    def id(self) -> int: ...
    @property
    def event_pk(self) -> int: ...
    @property
    def event_type(self) -> str: ...
    @property
    def channel(self) -> str: ...


@dataclass(frozen=True, slots=True)
class NotificationRef:
    """A send record named by its columns (the engine writes records with Core updates)."""

    id: int
    event_pk: int
    event_type: str
    channel: str
ALL = "*"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_id(prefix: str) -> str:
    """A random public id such as `ep_...` or `msg_...`."""
    return f"{prefix}_{secrets.token_urlsafe(18)}"


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    """Whether the endpoint's filter selects the event type (`*` selects all)."""
    return ALL in endpoint.event_types or event_type in endpoint.event_types


def _payload(event: Any, notification: NotificationLike, event_type: str, status: str,
             extra: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "notification_id": notification.id, "event_id": event.event_id,
        "event_type": notification.event_type, "channel": notification.channel,
        "status": status, **(extra or {}),
    }
    return {"type": event_type, "timestamp": utcnow().isoformat(), "data": data}


def record_status_change(session: Session, tenant: str | None,
                         notification: NotificationLike, status: str,
                         extra: dict[str, Any] | None = None) -> int:
    """Queues one message per enabled endpoint of the event's (tenant, producer) whose filter
    selects this change; a status already announced for the notification is not queued
    twice. Returns how many were queued. Call it in the status change's transaction."""
    return record_status_changes(session, [StatusChange(tenant, notification, status, extra)])


@dataclass(frozen=True, slots=True)
class StatusChange:
    tenant: str | None  # None: the event's own tenant
    notification: NotificationLike
    status: str
    extra: dict[str, Any] | None = None


def record_status_changes(session: Session, changes: list[StatusChange]) -> int:
    """`record_status_change` for many changes (the engine's answers of a batch): two
    queries for the batch when no endpoint wants them, the common case."""
    changes = [c for c in changes if c.status in STATUS_TYPES]
    if not changes:
        return 0
    events = {e.id: e for e in session.connection().execute(
        _EVENTS_OF, {"b_pks": sorted({c.notification.event_pk for c in changes})})}
    pairs = {(c.tenant or e.tenant, e.producer) for c in changes
             if (e := events.get(c.notification.event_pk)) is not None}
    endpoints: dict[tuple[str, str], list[WebhookEndpoint]] = {}
    if pairs:
        for endpoint in session.scalars(_ENDPOINTS_OF, {
                "b_tenants": sorted({t for t, _ in pairs}),
                "b_producers": sorted({p for _, p in pairs})}):
            endpoints.setdefault((endpoint.tenant, endpoint.producer), []).append(endpoint)
    if not endpoints:
        return 0
    queued = 0
    for change in changes:
        event, notification = events.get(change.notification.event_pk), change.notification
        if event is None:
            continue
        event_type = STATUS_TYPES[change.status]
        order_key = f"notification:{notification.id}"
        for endpoint in endpoints.get((change.tenant or event.tenant, event.producer), []):
            if not wants(endpoint, event_type) or _announced(session, endpoint.id, order_key,
                                                             event_type):
                continue
            session.add(WebhookDelivery(
                msg_id=new_id("msg"), endpoint_id=endpoint.id, order_key=order_key,
                event_type=event_type, payload=_payload(event, notification, event_type,
                                                        change.status, change.extra),
                state="pending", attempts=0, next_attempt_at=utcnow(), log=[]))
            queued += 1
            log.info("webhook_queued", event_type=event_type, notification_id=notification.id)
    if queued:
        session.flush()
    return queued


# record_status_changes' lookups, built once (every batch of answers runs them)
_EVENTS_OF = select(Event.id, Event.tenant, Event.producer, Event.event_id).where(
    Event.id.in_(bindparam("b_pks", expanding=True)))
_ENDPOINTS_OF = select(WebhookEndpoint).where(
    WebhookEndpoint.tenant.in_(bindparam("b_tenants", expanding=True)),
    WebhookEndpoint.producer.in_(bindparam("b_producers", expanding=True)),
    WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None))


def _announced(session: Session, endpoint_id: int, order_key: str, event_type: str) -> bool:
    return session.scalar(select(WebhookDelivery.id).where(
        WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.order_key == order_key,
        WebhookDelivery.event_type == event_type).limit(1)) is not None


def record_receipt(notification: Notification, status: str) -> int:
    """A provider receipt that moved a notification's status (hub.receipts.apply_status):
    queued in the session the notification belongs to, i.e. the receipt's transaction."""
    session = Session.object_session(notification)
    if session is None:
        return 0
    return record_status_change(session, None, notification, status)
