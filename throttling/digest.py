"""Daily digest: loyalty/marketing messages held until the customer's chosen hour, then
released together as one message.

Interface (what the pipeline sees): the limiter answers a held message with
DEFER(until=<digest time>, reason=digest_held). When the job comes back at that time,
the first of the customer's jobs to run takes every due item of that customer into one
`DigestBatch` and gets ALLOW(reason=digest_release, digest=batch): the pipeline renders
the `digest` template with the batch instead of the event's own template. The other
jobs whose items went into that batch get DROP(reason=digest_merged). If the batch is
not sent, `release` gives the items back so the next attempt takes them again.
"""

from __future__ import annotations

import threading
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

    def take(self, customer_id: str, claimer: str, now: datetime) -> DigestBatch | None:
        """Claims every due item of the customer for the batch `claimer` (the claimer's own
        item included); None when the claimer's item already went out in another batch."""
        ...

    def give_back(self, customer_id: str, claimer: str) -> None:
        """Returns the items of the batch `claimer` to waiting (the digest was not sent)."""
        ...


class MemoryDigestBook:
    """Digest items in a dict (tests and single-process tools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, DigestItem, datetime, str | None]] = {}

    def hold(self, customer_id: str, item: DigestItem, due: datetime) -> datetime:
        """See DigestBook.hold."""
        with self._lock:
            stored = self._items.setdefault(item.token, (customer_id, item, due, None))
            return stored[2]

    def take(self, customer_id: str, claimer: str, now: datetime) -> DigestBatch | None:
        """See DigestBook.take."""
        with self._lock:
            own = self._items.get(claimer)
            if own is not None and own[3] not in (None, claimer):
                return None
            for token, (customer, item, due, batch) in list(self._items.items()):
                if customer == customer_id and batch is None and due <= now:
                    self._items[token] = (customer, item, due, claimer)
            mine = [(item, due) for customer, item, due, batch in self._items.values()
                    if batch == claimer]
            if not mine:
                return None
            items = tuple(sorted((i for i, _ in mine), key=lambda i: (i.occurred_at, i.token)))
            return DigestBatch(customer_id, "", max(d for _, d in mine), items)

    def give_back(self, customer_id: str, claimer: str) -> None:
        """See DigestBook.give_back."""
        with self._lock:
            for token, (customer, item, due, batch) in list(self._items.items()):
                if batch == claimer:
                    self._items[token] = (customer, item, due, None)
