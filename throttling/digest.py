"""Daily digest: loyalty/marketing messages held until the customer's chosen hour, then
released together as one message.

Interface (what the pipeline sees):
1. A message for a customer who chose the digest is answered DEFER(until=<their hour>,
   reason=digest_held); the item waits in the DigestBook.
2. At that hour the job runs the whole pipeline again (preferences and consent are
   re-checked). Reaching the limiter *confirms* the item, which is deferred once more by
   the policy's `digest.gather` (default 1 minute) so the customer's other jobs confirm
   theirs too. An item whose job no longer reaches the limiter (consent withdrawn, opted
   out) is never confirmed and never sent.
3. After the gather time the first confirmed job takes every confirmed item of the
   customer into one `DigestBatch`: ALLOW(reason=digest_release, digest=batch). The
   pipeline renders the digest template with the batch instead of the event's template.
   Jobs whose items went into that batch get DROP(reason=digest_merged).
4. If the batch is not sent, `release` gives the items back; the next attempt (a retry
   or the fallback channel) takes them again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Protocol

from throttling.decision import DigestBatch, DigestItem
from throttling.quiet_hours import wall_instant, zone


def next_digest_time(now: datetime, hour: int, time_zone: str) -> datetime:
    """The first instant after `now` at which the customer's local clock shows `hour`:00."""
    tz = zone(time_zone)
    local_day = now.astimezone(tz).date()
    for offset in range(3):
        due = wall_instant(local_day + timedelta(days=offset), time(hour), tz)
        if due > now:
            return due
    raise AssertionError("unreachable: a day always has the hour")  # pragma: no cover


class DigestBook(Protocol):
    """Where held digest items wait; every method is one atomic step."""

    def hold(self, customer_id: str, item: DigestItem, due: datetime) -> datetime:
        """Keeps `item` until `due`; returns the due time stored first (idempotent per token)."""
        ...

    def confirm(self, customer_id: str, token: str, now: datetime) -> datetime:
        """Marks the item as re-checked at its due time; returns when it was first confirmed."""
        ...

    def take(self, customer_id: str, claimer: str, now: datetime) -> DigestBatch | None:
        """Claims every confirmed, unclaimed item of the customer for the batch `claimer`;
        None when the claimer's own item already went into another batch."""
        ...

    def give_back(self, customer_id: str, claimer: str) -> None:
        """Returns the items of the batch `claimer` to waiting (the digest was not sent)."""
        ...


@dataclass(slots=True)
class _Held:
    customer_id: str
    item: DigestItem
    due: datetime
    ready: datetime | None = None
    batch: str | None = None


class MemoryDigestBook:
    """Digest items in a dict (tests and single-process tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, _Held] = {}

    def forget(self, customer_id: str) -> int:
        """Erasure: drops the customer's held items; returns how many."""
        with self._lock:
            gone = [t for t, held in self._items.items() if held.customer_id == customer_id]
            for token in gone:
                del self._items[token]
            return len(gone)

    def hold(self, customer_id: str, item: DigestItem, due: datetime) -> datetime:
        """See DigestBook.hold."""
        with self._lock:
            return self._items.setdefault(item.token, _Held(customer_id, item, due)).due

    def confirm(self, customer_id: str, token: str, now: datetime) -> datetime:
        """See DigestBook.confirm."""
        with self._lock:
            held = self._items[token]
            held.ready = held.ready or now
            return held.ready

    def take(self, customer_id: str, claimer: str, now: datetime) -> DigestBatch | None:
        """See DigestBook.take."""
        with self._lock:
            own = self._items.get(claimer)
            if own is not None and own.batch not in (None, claimer):
                return None
            mine = []
            for held in self._items.values():
                if held.customer_id != customer_id or held.ready is None:
                    continue
                if held.batch is None:
                    held.batch = claimer
                if held.batch == claimer:
                    mine.append(held)
            if not mine:
                return None
            items = tuple(h.item for h in sorted(mine, key=lambda h: (h.item.occurred_at,
                                                                       h.item.token)))
            return DigestBatch(customer_id, "", max(h.due for h in mine), items)

    def give_back(self, customer_id: str, claimer: str) -> None:
        """See DigestBook.give_back."""
        with self._lock:
            for held in self._items.values():
                if held.batch == claimer:
                    held.batch = None
