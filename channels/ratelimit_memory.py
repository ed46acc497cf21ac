"""Provider rate limits inside one process (the embedded worker): a GCRA bucket per key
under one lock; callers sleep outside it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from channels.ratelimit import Rate, RateLimitTimeout, RateTable


@dataclass(slots=True)
class _Bucket:
    tat: float = 0.0       # theoretical arrival time of the next conforming message
    paused_until: float = 0.0
    epoch: int = 0         # bumped by every penalty, so sleepers can tell one came


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of one reservation attempt (times on the limiter's clock)."""

    granted: bool
    slot: float
    wait: float
    epoch: int


def reserve(bucket: _Bucket, rate: Rate, now: float, max_wait: float | None) -> Reservation:
    """Takes the next free slot at or after `now` unless it is more than `max_wait` away."""
    slot = max(now, bucket.tat - rate.tolerance, bucket.paused_until)
    wait = slot - now
    if max_wait is not None and wait > max_wait:
        return Reservation(False, slot, wait, bucket.epoch)
    bucket.tat = max(bucket.tat, slot) + rate.interval
    return Reservation(True, slot, wait, bucket.epoch)


def still_valid(bucket: _Bucket, held: Reservation) -> bool:
    """False if a penalty that covers the reserved slot came after the reservation."""
    return bucket.epoch == held.epoch or bucket.paused_until <= held.slot


class MemoryRateLimiter:
    """Thread-safe token buckets for one process."""

    def __init__(self, table: RateTable, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.table = table
        self.clock = clock
        self.sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, key: str) -> _Bucket:
        return self._buckets.setdefault(key, _Bucket())

    def acquire(self, key: str, timeout: float | None = None) -> float:
        """See ProviderRateLimiter.acquire."""
        rate = self.table.rate(key)
        if rate is None:
            return 0.0
        started = self.clock()
        while True:
            remaining = None if timeout is None else timeout - (self.clock() - started)
            with self._lock:
                held = reserve(self._bucket(key), rate, self.clock(), remaining)
            if not held.granted:
                raise RateLimitTimeout(key, held.wait)
            if held.wait > 0:
                self.sleep(held.wait)
                with self._lock:
                    if not still_valid(self._bucket(key), held):
                        continue  # a 429 paused the bucket while we slept: queue again
            return self.clock() - started

    def penalize(self, key: str, retry_after: float) -> None:
        """See ProviderRateLimiter.penalize."""
        if retry_after <= 0 or self.table.rate(key) is None:
            return
        with self._lock:
            bucket = self._bucket(key)
            bucket.paused_until = max(bucket.paused_until, self.clock() + retry_after)
            bucket.epoch += 1

    def close(self) -> None:
        """Nothing to free."""
