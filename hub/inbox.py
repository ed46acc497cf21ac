"""The in-app inbox as the carrier's app reads it: pages newest first, unread/unseen counts,
marks (read, seen, archived and their undo) and retention/erasure/export of the items.

Rows are written by the `inbox` channel's adapter (one per delivered message); here they are
only read and marked. Every function takes the customer's row id, resolved by the caller
within the caller's tenant, so another tenant's items are out of reach by construction."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.models import Device, InboxItem


class Mark(enum.StrEnum):
    """What a mark does to one item; `read` implies `seen` (an opened message was seen)."""

    READ = "read"
    UNREAD = "unread"
    SEEN = "seen"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"


@dataclass(frozen=True, slots=True)
class InboxCounts:
    """Badge numbers over the items not archived."""

    unread: int
    unseen: int


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page, newest first; `next_cursor` continues below its last item (None: the end)."""

    items: list[InboxItem]
    next_cursor: int | None


def item_json(item: InboxItem) -> dict[str, Any]:
    """An item as the API and the live stream show it."""

    def at(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": item.id, "event_type": item.event_type, "category": item.category,
            "title": item.title, "body": item.body, "action_url": item.action_url,
            "icon": item.icon, "parcel": item.parcel, "locale": item.locale,
            "created_at": item.created_at.isoformat(), "seen_at": at(item.seen_at),
            "read_at": at(item.read_at), "archived_at": at(item.archived_at)}


def list_items(session: Session, customer_pk: int, cursor: int | None, limit: int,
               archived: bool = False) -> InboxPage:
    """A page of the customer's items, newest first, below `cursor` (an item id). Ids only
    grow, so new arrivals never shift a page already handed out."""
    query = select(InboxItem).where(InboxItem.customer_pk == customer_pk,
                                    InboxItem.archived_at.is_not(None) if archived
                                    else InboxItem.archived_at.is_(None))
    if cursor is not None:
        query = query.where(InboxItem.id < cursor)
    rows = list(session.scalars(query.order_by(InboxItem.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return InboxPage(rows[:limit], rows[limit - 1].id if more else None)


def counts(session: Session, customer_pk: int) -> InboxCounts:
    """Unread and unseen items the customer has not archived."""
    unread = func.count().filter(InboxItem.read_at.is_(None))
    unseen = func.count().filter(InboxItem.seen_at.is_(None))
    row = session.execute(select(unread, unseen).where(
        InboxItem.customer_pk == customer_pk, InboxItem.archived_at.is_(None))).one()
    return InboxCounts(int(row[0]), int(row[1]))


def unread_counts(session: Session, customer_pks: list[int]) -> dict[int, int]:
    """Unread counts of several customers in one query (the live stream's fan-out)."""
    rows = session.execute(
        select(InboxItem.customer_pk, func.count())
        .where(InboxItem.customer_pk.in_(customer_pks), InboxItem.read_at.is_(None),
               InboxItem.archived_at.is_(None))
        .group_by(InboxItem.customer_pk))
    found = {int(pk): int(n) for pk, n in rows}
    return {pk: found.get(pk, 0) for pk in customer_pks}


def get_item(session: Session, customer_pk: int, item_id: int) -> InboxItem | None:
    """The customer's item, or None (also when it is another customer's)."""
    return session.scalar(select(InboxItem).where(InboxItem.customer_pk == customer_pk,
                                                  InboxItem.id == item_id))


def apply_mark(item: InboxItem, mark: Mark, now: datetime | None = None) -> None:
    """Applies a mark; idempotent: a time already set is kept (the first read counts)."""
    now = now or utcnow()
    if mark is Mark.READ:
        item.read_at = item.read_at or now
        item.seen_at = item.seen_at or now
    elif mark is Mark.UNREAD:
        item.read_at = None
    elif mark is Mark.SEEN:
        item.seen_at = item.seen_at or now
    elif mark is Mark.ARCHIVE:
        item.archived_at = item.archived_at or now
    else:
        item.archived_at = None


def mark_all(session: Session, customer_pk: int, mark: Mark, up_to: int | None) -> int:
    """Marks every unarchived item (up to and including the id `up_to`, when given: what
    the user had in front of them) read or seen; returns how many changed."""
    if mark not in (Mark.READ, Mark.SEEN):
        raise ValueError(f"mark_all takes read or seen, not {mark}")
    now = utcnow()
    scope: list[ColumnElement[bool]] = [InboxItem.customer_pk == customer_pk,
                                        InboxItem.archived_at.is_(None)]
    if up_to is not None:
        scope.append(InboxItem.id <= up_to)
    changed = 0
    if mark is Mark.READ:
        changed = _rows(session.execute(update(InboxItem).where(
            *scope, InboxItem.read_at.is_(None)).values(read_at=now)))
    seen = _rows(session.execute(update(InboxItem).where(
        *scope, InboxItem.seen_at.is_(None)).values(seen_at=now)))
    return changed if mark is Mark.READ else seen


def _rows(result: object) -> int:
    """How many rows a DML statement touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def purge_inbox(session: Session, cutoff: datetime) -> int:
    """Retention: deletes inbox items created before `cutoff`; returns how many."""
    return _rows(session.execute(delete(InboxItem).where(InboxItem.created_at < cutoff)))


def export_inbox(session: Session, customer_pk: int) -> dict[str, list[dict[str, Any]]]:
    """The customer's inbox items, for a GDPR export (devices are among the addresses)."""
    items = session.scalars(select(InboxItem).where(InboxItem.customer_pk == customer_pk)
                            .order_by(InboxItem.id))
    return {"inbox": [item_json(i) for i in items]}


def forget_app(session: Session, customer_pk: int) -> bool:
    """Erasure: deletes the customer's devices and inbox items; True if any were held."""
    items = _rows(session.execute(delete(InboxItem).where(InboxItem.customer_pk == customer_pk)))
    devices = _rows(session.execute(delete(Device).where(Device.customer_pk == customer_pk)))
    return bool(items or devices)


def items_after(session: Session, customer_pk: int, after_id: int, limit: int
                ) -> list[InboxItem]:
    """Unarchived items newer than `after_id`, oldest first (a stream's replay on reconnect)."""
    return list(session.scalars(select(InboxItem).where(
        InboxItem.customer_pk == customer_pk, InboxItem.id > after_id,
        InboxItem.archived_at.is_(None)).order_by(InboxItem.id).limit(limit)))
