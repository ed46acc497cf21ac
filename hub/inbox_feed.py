"""Live inbox updates for the SSE streams of one API process: a single poller reads the new
inbox rows (whoever wrote them: the embedded worker, a dramatiq worker in another process)
and fans them out in memory to the streams open for each (tenant, customer).

One query per tick however many clients are connected (plus one grouped unread count when
some of the new rows belong to a connected customer). Each subscriber's buffer is bounded:
a client too slow to drain it is cut off and resumes with `Last-Event-ID`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy import func, or_, select

from hub.db import Database
from hub.inbox import item_json, unread_counts
from hub.logs import get_logger
from hub.models import InboxItem

log = get_logger("inbox_feed")

# PostgreSQL hands out ids at insert, not at commit: a row with a lower id can become visible
# after a higher one. Ids skipped over are re-read for this long before being given up
# (a rolled-back insert leaves a gap for good).
GAP_SECONDS = 10.0
MAX_GAPS = 5_000

CustomerKey = tuple[str, int]  # (tenant, customer row id)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One thing to send down a stream: a new `message` (with its item id) or the `unread`
    count."""

    kind: str
    data: dict[str, Any]
    item_id: int | None = None


@dataclass(eq=False)
class Subscription:
    """One open stream's buffer; `overflowed` ends the stream (the client resumes)."""

    key: CustomerKey
    limit: int
    events: deque[FeedEvent] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False

    def push(self, event: FeedEvent) -> None:
        if len(self.events) >= self.limit:
            self.overflowed = True
        else:
            self.events.append(event)
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def next_batch(self, timeout: float | None) -> list[FeedEvent]:
        """What arrived since the last call, waiting up to `timeout` seconds for something."""
        if not self.events and not self.closed:
            with anyio.move_on_after(timeout):
                await self.ready.wait()
        self.ready.clear()
        batch = list(self.events)
        self.events.clear()
        return batch


@dataclass
class _Tick:
    rows: list[InboxItem]
    counts: dict[int, int]
    newest: int | None


class InboxFeed:
    """The process's poller and its subscribers (run `run()` as a task of the app's loop)."""

    def __init__(self, db: Database, interval: float = 0.2, buffer: int = 256,
                 batch: int = 2_000) -> None:
        self.db, self.interval, self.buffer, self.batch = db, interval, buffer, batch
        self._subs: dict[CustomerKey, set[Subscription]] = {}
        self._last: int | None = None
        self._gaps: dict[int, float] = {}  # id skipped over -> when first noticed
        # Its own thread token: requests queueing for the shared pool must not delay a tick.
        self._own = anyio.CapacityLimiter(1)

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def subscribe(self, tenant: str, customer_pk: int) -> Subscription:
        sub = Subscription((tenant, customer_pk), self.buffer)
        self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        found = self._subs.get(sub.key)
        if found is not None:
            found.discard(sub)
            if not found:
                del self._subs[sub.key]

    def publish_unread(self, tenant: str, customer_pk: int, unread: int) -> None:
        """Tells the customer's open streams in this process the new unread count."""
        for sub in self._subs.get((tenant, customer_pk), ()):
            sub.push(FeedEvent("unread", {"unread_count": unread}))

    def close_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.close()

    async def run(self) -> None:
        """Polls until cancelled; a failed tick is retried on the next (logged once per
        outage, not five times a second)."""
        failing = False
        while True:
            try:
                wanted = {pk for _, pk in self._subs}
                tick = await anyio.to_thread.run_sync(self._read, wanted, limiter=self._own)
                self._fan_out(tick)
                if failing:
                    log.info("inbox_feed_recovered")
                failing = False
            except Exception:
                if not failing:
                    log.exception("inbox_feed_error")
                failing = True
            await asyncio.sleep(self.interval)

    def _read(self, wanted: set[int]) -> _Tick:
        with self.db.sessions() as session:
            if self._last is None or not wanted:  # nobody listens: only keep up
                newest = session.scalar(select(func.max(InboxItem.id)))
                return _Tick([], {}, newest or 0)
            query = select(InboxItem).where(
                or_(InboxItem.id > self._last, InboxItem.id.in_(list(self._gaps))))
            rows = list(session.scalars(query.order_by(InboxItem.id).limit(self.batch)))
            mine = sorted({r.customer_pk for r in rows} & wanted)
            counts = unread_counts(session, mine) if mine else {}
            return _Tick(rows, counts, None)

    def _fan_out(self, tick: _Tick) -> None:
        if tick.newest is not None:
            self._last, self._gaps = tick.newest, {}
            return
        assert self._last is not None
        now = time.monotonic()
        for row in tick.rows:
            self._gaps.pop(row.id, None)
            if row.id > self._last:
                skipped = range(max(self._last + 1, row.id - MAX_GAPS), row.id)
                self._gaps.update((gap, now) for gap in skipped)
                self._last = row.id
            subs = self._subs.get((row.tenant, row.customer_pk))
            if subs:
                event = FeedEvent("message", item_json(row), row.id)
                for sub in subs:
                    sub.push(event)
        self._gaps = {gap: at for gap, at in self._gaps.items()
                      if now - at < GAP_SECONDS}
        if len(self._gaps) > MAX_GAPS:  # a burst of rollbacks: keep the newest ones
            self._gaps = dict(sorted(self._gaps.items())[-MAX_GAPS:])
        tenants = {row.customer_pk: row.tenant for row in tick.rows}
        for pk, unread in tick.counts.items():
            self.publish_unread(tenants[pk], pk, unread)
