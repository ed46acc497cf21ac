"""`GET /v1/templates/{event_type}/stats`: what a (transactional) template achieved, per
channel × locale, counted from the tenant's send records and clicks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import case, func, select

from hub.api.auth import require
from hub.api.problems import Problem
from hub.audience_models import LinkClick, TrackedLink
from hub.events import event_types
from hub.keys import Principal, Scope
from hub.models import Event, Notification

router = APIRouter(prefix="/v1/templates", tags=["templates"])
Reader = Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))]
# Send-record states after the provider took the message, and those that say it arrived.
SENT = ("sent", "unconfirmed", "delivered", "opened", "clicked", "complained", "unsubscribed",
        "bounced")
DELIVERED = ("delivered", "opened", "clicked", "complained", "unsubscribed")
FAILED = ("failed", "bounced")


def _count(states: tuple[str, ...]) -> Any:
    return func.sum(case((Notification.status.in_(states), 1), else_=0))


@router.get("/{event_type}/stats")
def template_stats(request: Request, who: Reader,
                   event_type: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    """Per channel and locale: messages sent, delivered, failed, and clicked (messages with
    a click on a tracked link or a provider click receipt). Counts the key's tenant only."""
    if event_type not in event_types():
        raise Problem(404, "not-found", f"No event type {event_type!r}.")
    clicked = (select(TrackedLink.send_key).join(LinkClick, LinkClick.link_id == TrackedLink.id)
               .where(TrackedLink.tenant == who.tenant).scalar_subquery())
    was_clicked = case((Notification.status == "clicked", 1),
                       (Notification.idempotency_key.in_(clicked), 1), else_=0)
    query = (select(Notification.channel, Notification.locale, _count(SENT), _count(DELIVERED),
                    _count(FAILED), func.sum(was_clicked))
             .join(Event, Event.id == Notification.event_pk)
             .where(Event.tenant == who.tenant, Notification.event_type == event_type)
             .group_by(Notification.channel, Notification.locale)
             .order_by(Notification.channel, Notification.locale))
    with request.app.state.runtime.db.sessions() as session:
        rows = session.execute(query).all()
    return {"event_type": event_type, "category": str(event_types()[event_type].category),
            "rows": [{"channel": channel, "locale": locale, "sent": int(sent or 0),
                      "delivered": int(delivered or 0), "failed": int(failed or 0),
                      "clicked": int(clicks or 0)}
                     for channel, locale, sent, delivered, failed, clicks in rows]}
