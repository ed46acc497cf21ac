"""The in-app inbox API the carrier's app calls, with an API key (`customers:write`) or the
customer's own session token: pages, badge counts, marks and the live SSE stream."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, ServerSentEvent

from hub.api.auth import require_own
from hub.api.problems import Problem
from hub.customer_tokens import CustomerScope
from hub.customers import get_customer, is_erased, tombstone_key
from hub.inbox import (
    InboxCounts,
    Mark,
    apply_mark,
    counts,
    get_item,
    item_json,
    items_after,
    list_items,
    mark_all,
)
from hub.inbox_feed import InboxFeed
from hub.keys import Principal, Scope

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])
Caller = Annotated[Principal, Depends(require_own(Scope.CUSTOMERS_WRITE, CustomerScope.INBOX))]
CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\w.:@+-]+$")]
ItemId = Annotated[int, Path(ge=1, le=2**62)]
UpTo = Annotated[int | None, Query(ge=1, le=2**62, description="Only items up to and "
                                   "including this id (the newest one the user had in front "
                                   "of them), so a message that arrived since stays unread.")]
REPLAY_LIMIT = 100  # items a reconnecting stream catches up on; older ones: GET the inbox
HEARTBEAT_SECONDS = 15
SEND_TIMEOUT = 30


class InboxItemOut(BaseModel):
    id: int
    event_type: str
    category: str
    title: str
    body: str
    action_url: str | None
    icon: str | None
    parcel: str | None
    locale: str
    created_at: datetime
    seen_at: datetime | None
    read_at: datetime | None
    archived_at: datetime | None


class InboxPageOut(BaseModel):
    items: list[InboxItemOut]
    next_cursor: int | None
    unread_count: int
    unseen_count: int


class MarkOut(BaseModel):
    item: InboxItemOut
    unread_count: int
    unseen_count: int


class MarkAllOut(BaseModel):
    changed: int
    unread_count: int
    unseen_count: int


def _customer_pk(session: Session, request: Request, who: Principal, customer_id: str) -> int:
    """The row id of the caller's tenant's customer; another tenant's is 404."""
    customer = get_customer(session, who.tenant, customer_id)
    if customer is not None:
        return customer.id
    if is_erased(session, who.tenant, tombstone_key(request.app.state.runtime.settings),
                 customer_id):
        raise Problem(410, "erased", f"Customer {customer_id!r} was erased on request.")
    raise Problem(404, "not-found", f"No customer {customer_id!r}.")


def _badges(found: InboxCounts) -> dict[str, int]:
    return {"unread_count": found.unread, "unseen_count": found.unseen}


def _publish(request: Request, who: Principal, customer_pk: int, unread: int) -> None:
    """Tells this process's open streams of the customer the new unread count."""
    feed: InboxFeed = request.app.state.inbox_feed
    anyio.from_thread.run_sync(feed.publish_unread, who.tenant, customer_pk, unread)


@router.get("/{customer_id}", response_model=InboxPageOut)
def get_inbox(customer_id: CustomerId, request: Request, who: Caller,
              cursor: Annotated[int | None, Query(ge=1, le=2**62, description="`next_cursor` "
                                                  "of the previous page")] = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20,
              archived: Annotated[bool, Query(description="The archived items instead")]
              = False) -> dict[str, Any]:
    """The customer's items newest first, paged by cursor, with the badge counts."""
    with request.app.state.runtime.db.sessions() as session:
        pk = _customer_pk(session, request, who, customer_id)
        page = list_items(session, pk, cursor, limit, archived)
        return {"items": [item_json(i) for i in page.items], "next_cursor": page.next_cursor,
                **_badges(counts(session, pk))}


@router.post("/{customer_id}/items/{item_id}/{mark}", response_model=MarkOut)
def post_mark(customer_id: CustomerId, item_id: ItemId, mark: Mark, request: Request,
              who: Caller) -> dict[str, Any]:
    """Marks one item read (which also marks it seen), unread, seen, archived or
    unarchived; marking twice changes nothing."""
    with request.app.state.runtime.db.transaction() as session:
        pk = _customer_pk(session, request, who, customer_id)
        item = get_item(session, pk, item_id)
        if item is None:
            raise Problem(404, "not-found", f"No inbox item {item_id} for this customer.")
        apply_mark(item, mark)
        session.flush()
        found = counts(session, pk)
        reply = {"item": item_json(item), **_badges(found)}
    _publish(request, who, pk, found.unread)
    return reply


def _mark_all(customer_id: str, mark: Mark, up_to: int | None, request: Request,
              who: Principal) -> dict[str, Any]:
    with request.app.state.runtime.db.transaction() as session:
        pk = _customer_pk(session, request, who, customer_id)
        changed = mark_all(session, pk, mark, up_to)
        found = counts(session, pk)
    _publish(request, who, pk, found.unread)
    return {"changed": changed, **_badges(found)}


@router.post("/{customer_id}/read-all", response_model=MarkAllOut)
def post_read_all(customer_id: CustomerId, request: Request, who: Caller, up_to: UpTo = None
                  ) -> dict[str, Any]:
    """Marks every unarchived item read (and seen)."""
    return _mark_all(customer_id, Mark.READ, up_to, request, who)


@router.post("/{customer_id}/seen-all", response_model=MarkAllOut)
def post_seen_all(customer_id: CustomerId, request: Request, who: Caller, up_to: UpTo = None
                  ) -> dict[str, Any]:
    """Marks every unarchived item seen (the badge was cleared; nothing opened)."""
    return _mark_all(customer_id, Mark.SEEN, up_to, request, who)


def _resolve(request: Request, who: Principal, customer_id: str) -> int:
    with request.app.state.runtime.db.sessions() as session:
        return _customer_pk(session, request, who, customer_id)


def _opening(request: Request, customer_pk: int, after: int | None
             ) -> tuple[list[dict[str, Any]], int]:
    """The items to replay after `after` and the unread count."""
    with request.app.state.runtime.db.sessions() as session:
        replay = items_after(session, customer_pk, after, REPLAY_LIMIT) if after is not None \
            else []
        return [item_json(i) for i in replay], counts(session, customer_pk).unread


def _message(item: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(item), event="message", id=str(item["id"]))


def _unread(count: int) -> ServerSentEvent:
    return ServerSentEvent(json.dumps({"unread_count": count}), event="unread")


@router.get("/{customer_id}/stream", response_class=EventSourceResponse, responses={200: {
    "description": "`text/event-stream`: `message` events (an inbox item as JSON, `id:` its "
    "item id) and `unread` events (`{\"unread_count\": n}`), with heartbeat comments.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def stream(customer_id: CustomerId, request: Request, who: Caller,
                 last_event_id: Annotated[int | None, Header(
                     alias="Last-Event-ID", ge=0, le=2**62,
                     description="Resume: the items after this id are sent first")] = None
                 ) -> EventSourceResponse:
    """Live inbox updates. The stream ends when a customer token expires or the client is
    too slow to keep up; reconnect with `Last-Event-ID` to get what was missed."""
    feed: InboxFeed = request.app.state.inbox_feed
    pk = await anyio.to_thread.run_sync(_resolve, request, who, customer_id)  # 404 before 200
    # Subscribed before the replay is read: a row written in between comes twice (the
    # stream drops the repeat by id) rather than not at all.
    sub = feed.subscribe(who.tenant, pk)
    try:
        replay, unread = await anyio.to_thread.run_sync(_opening, request, pk, last_event_id)
    except BaseException:
        feed.unsubscribe(sub)
        raise
    deadline = who.customer.expires_at if who.customer is not None else None

    async def events() -> AsyncIterator[ServerSentEvent]:
        # Only the replay can overlap what the feed brings (the feed hands each id out once,
        # though on PostgreSQL not always in id order, so no "newest sent" filter here).
        replayed = {item["id"] for item in replay}
        try:
            for item in replay:
                yield _message(item)
            yield _unread(unread)
            while not sub.closed and not sub.overflowed:
                left = None if deadline is None else deadline - time.time()
                if left is not None and left <= 0:
                    return
                for event in await sub.next_batch(left):
                    if event.item_id is None:
                        yield _unread(event.data["unread_count"])
                    elif event.item_id not in replayed:
                        yield _message(event.data)
        finally:
            feed.unsubscribe(sub)

    # A client that stops reading is dropped after SEND_TIMEOUT (it resumes by Last-Event-ID).
    return EventSourceResponse(events(), ping=HEARTBEAT_SECONDS, send_timeout=SEND_TIMEOUT)
