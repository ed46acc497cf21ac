"""In-process counters: for unit tests and single-process tools (nothing survives a restart)."""

from __future__ import annotations

import threading
from collections import defaultdict

from throttling.ledger import (
    Admission,
    Mark,
    Outcome,
    Ticket,
    judge_parcel,
    next_mark,
    window_start,
)

_ParcelKey = tuple[str, str]
_MarkKey = tuple[str, str, str, str]


class MemoryCounterStore:
    """Dicts under one lock; the same semantics as the SQL and Redis backends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, dict[str, int]] = defaultdict(dict)
        self._ranks: dict[_ParcelKey, int] = {}
        self._marks: dict[_MarkKey, Mark] = {}

    def admit(self, ticket: Ticket) -> Admission:
        """See CounterStore.admit."""
        with self._lock:
            parcel = ticket.parcel
            if parcel is not None:
                pkey = (parcel.customer_id, parcel.tracking_number)
                mkey = (*pkey, parcel.status, parcel.channel)
                mark = self._marks.get(mkey)
                verdict = judge_parcel(ticket, self._ranks.get(pkey, 0), mark)
                if verdict is not None:
                    return Admission(verdict)
                self._ranks[pkey] = max(self._ranks.get(pkey, 0), parcel.rank)
            if ticket.hold:
                self._store_mark(ticket)
                return Admission(Outcome.HELD)
            for cap in ticket.caps:
                hits = self._hits[cap.scope]
                start = window_start(ticket, cap)
                for member in [m for m, at in hits.items() if at <= start]:
                    del hits[member]
                if ticket.token not in hits and len(hits) >= cap.limit:
                    return Admission(Outcome.CAPPED, cap.rule)
            for cap in ticket.caps:
                self._hits[cap.scope].setdefault(ticket.token, ticket.now_ms)
            self._store_mark(ticket)
            return Admission(Outcome.ADMITTED)

    def _store_mark(self, ticket: Ticket) -> None:
        parcel = ticket.parcel
        if parcel is None:
            return
        mkey = (parcel.customer_id, parcel.tracking_number, parcel.status, parcel.channel)
        mark = next_mark(ticket, self._marks.get(mkey))
        if mark is not None:
            self._marks[mkey] = mark

    def release(self, ticket: Ticket) -> None:
        """See CounterStore.release."""
        with self._lock:
            for cap in ticket.caps:
                self._hits[cap.scope].pop(ticket.token, None)
            parcel = ticket.parcel
            if parcel is not None:
                mkey = (parcel.customer_id, parcel.tracking_number, parcel.status, parcel.channel)
                mark = self._marks.get(mkey)
                if mark is not None and mark.owner == ticket.token:
                    del self._marks[mkey]

    def forget(self, customer_id: str) -> int:
        """Erasure: drops every counter and parcel mark of the customer; returns how many."""
        with self._lock:
            scopes = [s for s in self._hits if s.split("|", 1)[0] == customer_id]
            ranks = [k for k in self._ranks if k[0] == customer_id]
            marks = [k for k in self._marks if k[0] == customer_id]
            for scope in scopes:
                del self._hits[scope]
            for rank in ranks:
                del self._ranks[rank]
            for mark in marks:
                del self._marks[mark]
            return len(scopes) + len(ranks) + len(marks)

    def close(self) -> None:
        """Nothing to free."""
