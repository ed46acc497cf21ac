"""Provider rate limits shared by every process on one Redis (scale-out).

The same GCRA as `channels.ratelimit_memory`, one hash per key (`tat`, `pause`, `epoch`, in
microseconds of the Redis server's clock), each step one Lua script: atomic, and one clock
for all processes and hosts, so N processes together stay within the rate. Reservations are
handed out in the order the scripts run: first come, first served across processes.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from channels.ratelimit import Rate, RateLimitTimeout, RateTable

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS[1]: bucket; ARGV: interval µs, tolerance µs, max wait µs (-1: none)
# returns {granted 0/1, wait µs, epoch, slot µs} (numbers as strings: no float truncation)
_RESERVE = _NOW + """
local v = redis.call('HMGET', KEYS[1], 'tat', 'pause', 'epoch')
local tat, pause, epoch = tonumber(v[1] or '0'), tonumber(v[2] or '0'), v[3] or '0'
local interval, tolerance, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local slot = math.max(now, tat - tolerance, pause)
local wait = slot - now
if max_wait >= 0 and wait > max_wait then
  return {0, string.format('%.0f', wait), epoch, string.format('%.0f', slot)}
end
tat = math.max(tat, slot) + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
redis.call('PEXPIRE', KEYS[1], math.floor((math.max(tat, pause) - now) / 1000) + 60000)
return {1, string.format('%.0f', wait), epoch, string.format('%.0f', slot)}
"""

# KEYS[1]: bucket; ARGV: epoch at reservation, slot µs → 1 if the slot still stands
_CONFIRM = """
local v = redis.call('HMGET', KEYS[1], 'pause', 'epoch')
if (v[2] or '0') == ARGV[1] or tonumber(v[1] or '0') <= tonumber(ARGV[2]) then return 1 end
return 0
"""

# KEYS[1]: bucket; ARGV: pause µs from now
_PENALIZE = _NOW + """
local until_ = now + tonumber(ARGV[1])
local pause = tonumber(redis.call('HGET', KEYS[1], 'pause') or '0')
redis.call('HSET', KEYS[1], 'pause', string.format('%.0f', math.max(pause, until_)))
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[1]) / 1000) + 60000)
return 1
"""

_US = 1_000_000


class RedisRateLimiter:
    """Token buckets in Redis under a key prefix; thread-safe (redis-py's pool)."""

    def __init__(self, client: redis.Redis, table: RateTable, prefix: str = "hub:rate:") -> None:
        self.client = client
        self.table = table
        self.prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._confirm = client.register_script(_CONFIRM)
        self._penalize = client.register_script(_PENALIZE)

    @classmethod
    def from_url(cls, url: str, table: RateTable, prefix: str = "hub:rate:") -> RedisRateLimiter:
        """A limiter on a new client for `url` (redis://host:port/db)."""
        return cls(redis.Redis.from_url(url), table, prefix)

    def _reserve_once(self, key: str, rate: Rate, max_wait: float | None) -> list[Any]:
        args = [round(rate.interval * _US), round(rate.tolerance * _US),
                -1 if max_wait is None else round(max(0.0, max_wait) * _US)]
        return list(self._reserve(keys=[self.prefix + key], args=args))

    def acquire(self, key: str, timeout: float | None = None) -> float:
        """See ProviderRateLimiter.acquire."""
        rate = self.table.rate(key)
        if rate is None:
            return 0.0
        started = time.monotonic()
        while True:
            remaining = None if timeout is None else timeout - (time.monotonic() - started)
            granted, wait_us, epoch, slot_us = self._reserve_once(key, rate, remaining)
            wait = int(wait_us) / _US
            if not int(granted):
                raise RateLimitTimeout(key, wait)
            if wait > 0:
                time.sleep(wait)
                if not self._confirm(keys=[self.prefix + key], args=[epoch, slot_us]):
                    continue  # a 429 paused the bucket while we slept: queue again
            return time.monotonic() - started

    def penalize(self, key: str, retry_after: float) -> None:
        """See ProviderRateLimiter.penalize."""
        if retry_after <= 0 or self.table.rate(key) is None:
            return
        self._penalize(keys=[self.prefix + key], args=[round(retry_after * _US)])

    def close(self) -> None:
        """Closes the client's connections."""
        self.client.close()
