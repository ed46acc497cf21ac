"""Counters in the hub's own database (the default backend): SQLite or PostgreSQL.

Atomicity: on PostgreSQL every ticket first takes a transaction-scoped advisory lock on
the customer, so concurrent workers (threads or processes) judge one customer's tickets
one at a time; on SQLite the hub's engine begins every transaction IMMEDIATE, which
serialises writers on the whole file.
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from throttling.backends.sql_tables import throttle_hits, throttle_marks, throttle_parcels
from throttling.errors import BackendError
from throttling.ledger import (
    Admission,
    Mark,
    MarkState,
    Outcome,
    ParcelStatus,
    Ticket,
    judge_parcel,
    next_mark,
    window_start,
)

_PURGE_ONE_IN = 64  # expired hits of a counter are deleted on about one ticket in 64


class SqlCounterStore:
    """Sliding windows as rows of `throttle_hits`, the parcel ledger in two small tables."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise BackendError(f"SQL counters support SQLite and PostgreSQL, not "
                               f"{engine.dialect.name}")
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._insert: Any = postgresql.insert if self._pg else sqlite.insert

    def _lock(self, conn: Connection, customer_id: str) -> None:
        if self._pg:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"),
                         {"k": customer_id})

    def admit(self, ticket: Ticket) -> Admission:
        """See CounterStore.admit."""
        with self.engine.begin() as conn:
            self._lock(conn, ticket.customer_id)
            if ticket.parcel is not None:
                verdict = self._judge_parcel(conn, ticket, ticket.parcel)
                if verdict is not None:
                    return Admission(verdict)
            if ticket.hold:
                self._store_mark(conn, ticket, ticket.parcel)
                return Admission(Outcome.HELD)
            if ticket.caps:
                full = self._take_slots(conn, ticket)
                if full is not None:
                    return Admission(Outcome.CAPPED, full)
            self._store_mark(conn, ticket, ticket.parcel)
            return Admission(Outcome.ADMITTED)

    def _judge_parcel(self, conn: Connection, ticket: Ticket, parcel: ParcelStatus
                      ) -> Outcome | None:
        p = throttle_parcels.c
        where = and_(p.customer_id == parcel.customer_id,
                     p.tracking_number == parcel.tracking_number)
        max_rank = conn.execute(select(p.max_rank).where(where)).scalar()
        verdict = judge_parcel(ticket, max_rank or 0, self._mark(conn, parcel))
        if verdict is not None:
            return verdict
        if max_rank is None:
            conn.execute(throttle_parcels.insert().values(
                customer_id=parcel.customer_id, tracking_number=parcel.tracking_number,
                max_rank=parcel.rank, updated_ms=ticket.now_ms))
        elif parcel.rank > max_rank:
            conn.execute(update(throttle_parcels).where(where).values(
                max_rank=parcel.rank, updated_ms=ticket.now_ms))
        return None

    def _mark(self, conn: Connection, parcel: ParcelStatus) -> Mark | None:
        m = throttle_marks.c
        row = conn.execute(select(m.state, m.owner).where(_mark_key(parcel))).first()
        return Mark(MarkState(row.state), row.owner) if row else None

    def _store_mark(self, conn: Connection, ticket: Ticket, parcel: ParcelStatus | None) -> None:
        if parcel is None:
            return
        mark = next_mark(ticket, self._mark(conn, parcel))
        if mark is None:
            return
        values = {"state": mark.state.value, "owner": mark.owner, "updated_ms": ticket.now_ms}
        stmt = self._insert(throttle_marks).values(
            customer_id=parcel.customer_id, tracking_number=parcel.tracking_number,
            status=parcel.status, channel=parcel.channel, **values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["customer_id", "tracking_number", "status", "channel"], set_=values))

    def _take_slots(self, conn: Connection, ticket: Ticket) -> str | None:
        """Counts every window; if none is full, takes a slot in each (returns a full rule)."""
        h = throttle_hits.c
        if random.randrange(_PURGE_ONE_IN) == 0:
            conn.execute(delete(throttle_hits).where(or_(*(
                and_(h.scope_key == cap.scope, h.at_ms <= window_start(ticket, cap))
                for cap in ticket.caps))))
        mine = func.max(case((h.member == ticket.token, 1), else_=0))
        rows = conn.execute(
            select(h.scope_key, func.count(), mine)
            .where(or_(*(and_(h.scope_key == cap.scope, h.at_ms > window_start(ticket, cap))
                         for cap in ticket.caps)))
            .group_by(h.scope_key)
        ).all()
        counted = {row[0]: (int(row[1]), bool(row[2])) for row in rows}
        fresh = []
        for cap in ticket.caps:
            used, held = counted.get(cap.scope, (0, False))
            if held:
                continue  # this message already holds its slot (a re-run): idempotent
            if used >= cap.limit:
                return cap.rule
            fresh.append({"scope_key": cap.scope, "member": ticket.token, "at_ms": ticket.now_ms})
        if fresh:
            stmt = self._insert(throttle_hits)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["scope_key", "member"], set_={"at_ms": stmt.excluded.at_ms}),
                fresh)
        return None

    def release(self, ticket: Ticket) -> None:
        """See CounterStore.release."""
        h, m = throttle_hits.c, throttle_marks.c
        with self.engine.begin() as conn:
            self._lock(conn, ticket.customer_id)
            if ticket.caps:
                conn.execute(delete(throttle_hits).where(
                    h.scope_key.in_([cap.scope for cap in ticket.caps]),
                    h.member == ticket.token))
            if ticket.parcel is not None:
                conn.execute(delete(throttle_marks).where(
                    _mark_key(ticket.parcel), m.owner == ticket.token))

    def purge(self, before_ms: int) -> int:
        """Deletes hits older than `before_ms` (housekeeping); returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(throttle_hits).where(throttle_hits.c.at_ms < before_ms))
            return int(result.rowcount or 0)

    def close(self) -> None:
        """The engine belongs to the caller; nothing to free here."""


def _mark_key(parcel: ParcelStatus) -> Any:
    m = throttle_marks.c
    return and_(m.customer_id == parcel.customer_id, m.tracking_number == parcel.tracking_number,
                m.status == parcel.status, m.channel == parcel.channel)
