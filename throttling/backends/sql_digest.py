"""Digest items in the hub's database (used whichever counter backend is selected)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, select, text, update

from throttling.backends.sql import locked_begin
from throttling.backends.sql_tables import throttle_digest
from throttling.decision import DigestBatch, DigestItem


def to_ms(instant: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(instant.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """An aware UTC instant from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


class SqlDigestBook:
    """Rows of `throttle_digest`; `batch` names the claimer once an item is released."""

    def __init__(self, engine: Engine,
                 write_lock: AbstractContextManager[Any] | None = None) -> None:
        """`write_lock`: see SqlCounterStore."""
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._write_lock = write_lock or nullcontext()

    def _lock(self, conn: Connection, customer_id: str) -> None:
        if self._pg:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 11))"),
                         {"k": customer_id})

    def hold(self, customer_id: str, item: DigestItem, due: datetime) -> datetime:
        """See DigestBook.hold."""
        d = throttle_digest.c
        with locked_begin(self.engine, self._write_lock) as conn:
            self._lock(conn, customer_id)
            stored = conn.execute(select(d.due_ms).where(d.item_ref == item.token)).scalar()
            if stored is not None:
                return from_ms(stored)
            conn.execute(throttle_digest.insert().values(
                customer_id=customer_id, item_ref=item.token, event_type=item.event_type,
                category=item.category, occurred_ms=to_ms(item.occurred_at), due_ms=to_ms(due),
                summary=item.summary, batch=None))
            return due

    def confirm(self, customer_id: str, token: str, now: datetime) -> datetime:
        """See DigestBook.confirm."""
        d = throttle_digest.c
        with locked_begin(self.engine, self._write_lock) as conn:
            self._lock(conn, customer_id)
            conn.execute(update(throttle_digest).where(
                d.item_ref == token, d.ready_ms.is_(None)).values(ready_ms=to_ms(now)))
            ready = conn.execute(select(d.ready_ms).where(d.item_ref == token)).scalar()
        return from_ms(ready if ready is not None else to_ms(now))

    def take(self, customer_id: str, claimer: str, now: datetime) -> DigestBatch | None:
        """See DigestBook.take."""
        d = throttle_digest.c
        with locked_begin(self.engine, self._write_lock) as conn:
            self._lock(conn, customer_id)
            own = conn.execute(select(d.batch).where(d.item_ref == claimer)).first()
            if own is not None and own.batch not in (None, claimer):
                return None
            conn.execute(update(throttle_digest).where(
                d.customer_id == customer_id, d.batch.is_(None), d.ready_ms.is_not(None)
            ).values(batch=claimer))
            rows = conn.execute(select(throttle_digest).where(
                and_(d.customer_id == customer_id, d.batch == claimer)
            ).order_by(d.occurred_ms, d.item_ref)).all()
        if not rows:
            return None
        items = tuple(DigestItem(r.item_ref, r.event_type, r.category, from_ms(r.occurred_ms),
                                 dict(r.summary or {})) for r in rows)
        return DigestBatch(customer_id, "", from_ms(max(r.due_ms for r in rows)), items)

    def give_back(self, customer_id: str, claimer: str) -> None:
        """See DigestBook.give_back."""
        d = throttle_digest.c
        with locked_begin(self.engine, self._write_lock) as conn:
            self._lock(conn, customer_id)
            conn.execute(update(throttle_digest).where(
                d.customer_id == customer_id, d.batch == claimer).values(batch=None))

    def forget(self, customer_id: str) -> int:
        """Erasure: deletes the customer's held items; returns how many."""
        d = throttle_digest.c
        with locked_begin(self.engine, self._write_lock) as conn:
            self._lock(conn, customer_id)
            result = conn.execute(delete(throttle_digest).where(d.customer_id == customer_id))
        return int(result.rowcount or 0)
