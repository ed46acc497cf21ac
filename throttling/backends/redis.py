"""Counters in Redis for scale-out: each ticket is judged by one Lua script (one atomic step).

A cap is a sorted set of slot owners scored by millisecond (a true sliding window); the
parcel ledger is one hash per (customer, parcel) holding the highest rank and a mark per
status × channel. Keys carry the customer in a hash tag, so one ticket's keys share a
Redis Cluster slot.
"""

from __future__ import annotations

from typing import Any

import redis

from throttling.ledger import LEDGER_RETENTION, Admission, Outcome, ParcelStatus, Ticket

PARCEL_TTL_MS = int(LEDGER_RETENTION.total_seconds() * 1000)

_ADMIT = """
local token, now, flags = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local hold, has_parcel = string.sub(flags, 1, 1) == '1', string.sub(flags, 2, 2) == '1'
local pkey, field = KEYS[1], ARGV[5]
if has_parcel then
  local rank = tonumber(ARGV[4])
  local maxr = tonumber(redis.call('HGET', pkey, 'rank') or '0')
  local mark = redis.call('HGET', pkey, field)
  local state, owner = false, false
  if mark then state = string.sub(mark, 1, 4); owner = string.sub(mark, 6) end
  if rank > 0 and rank < maxr then
    if state == 'held' then return {'superseded', ''} end
    return {'stale', ''}
  end
  if state == 'sent' and owner ~= token and string.sub(flags, 3, 3) ~= '1' then
    return {'duplicate', ''}
  end
  if rank > maxr then redis.call('HSET', pkey, 'rank', rank) end
  redis.call('PEXPIRE', pkey, PARCEL_TTL_MS)
end
local function store_mark()
  if not has_parcel then return end
  if hold then
    local cur = redis.call('HGET', pkey, field)
    if cur and string.sub(cur, 1, 4) == 'sent' then return end
    redis.call('HSET', pkey, field, 'held:' .. token)
  else
    redis.call('HSET', pkey, field, 'sent:' .. token)
  end
end
if hold then
  store_mark()
  return {'held', ''}
end
local windows = {}
for i = 2, #KEYS do
  local limit, window, rule = string.match(ARGV[i + 4], '^(%d+) (%d+) (.*)$')
  windows[i] = window
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(window))
  if not redis.call('ZSCORE', KEYS[i], token) then
    if redis.call('ZCARD', KEYS[i]) >= tonumber(limit) then return {'capped', rule} end
  end
end
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], 'NX', now, token)
  redis.call('PEXPIRE', KEYS[i], windows[i])
end
store_mark()
return {'admitted', ''}
""".replace("PARCEL_TTL_MS", str(PARCEL_TTL_MS))

_RELEASE = """
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
if ARGV[2] == '1' then
  local cur = redis.call('HGET', KEYS[1], ARGV[3])
  if cur and string.sub(cur, 6) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[3]) end
end
return 1
"""


class RedisCounterStore:
    """Sliding windows and the parcel ledger in Redis, under a key prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "hub:throttle:") -> None:
        self.client = client
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, prefix: str = "hub:throttle:") -> RedisCounterStore:
        """A store on a new client for `url` (redis://host:port/db)."""
        return cls(redis.Redis.from_url(url), prefix)

    def _keys(self, ticket: Ticket) -> list[str]:
        tag = f"{self.prefix}{{{ticket.customer_id}}}"
        parcel = f"{tag}:p:{ticket.parcel.tracking_number}" if ticket.parcel else f"{tag}:p"
        return [parcel, *(f"{tag}:c:{cap.scope}" for cap in ticket.caps)]

    def admit(self, ticket: Ticket) -> Admission:
        """See CounterStore.admit."""
        parcel = ticket.parcel
        repeatable = bool(parcel and parcel.repeatable)
        flags = f"{int(ticket.hold)}{int(parcel is not None)}{int(repeatable)}"
        args: list[Any] = [ticket.token, ticket.now_ms, flags, parcel.rank if parcel else 0,
                           _field(parcel)]
        args += [f"{cap.limit} {cap.window_ms} {cap.rule}" for cap in ticket.caps]
        outcome, rule = self._admit(keys=self._keys(ticket), args=args)
        return Admission(Outcome(_text(outcome)), _text(rule) or None)

    def release(self, ticket: Ticket) -> None:
        """See CounterStore.release."""
        self._release(keys=self._keys(ticket),
                      args=[ticket.token, int(ticket.parcel is not None), _field(ticket.parcel)])

    def export(self, customer_id: str) -> dict[str, Any]:
        """Everything kept for the customer (a GDPR export): per key, a parcel ledger's
        fields or a counter's number of counted messages."""
        tag = f"{self.prefix}{{{customer_id}}}"
        out: dict[str, Any] = {}
        for raw in self.client.scan_iter(match=_glob_escape(tag) + "*", count=500):
            key = _text(raw)
            if _text(self.client.type(raw)) == "hash":
                out[key[len(tag):]] = {_text(f): _text(v)
                                       for f, v in self.client.hgetall(raw).items()}
            else:
                out[key[len(tag):]] = int(self.client.zcard(raw))
        return out

    def forget(self, customer_id: str) -> int:
        """Erasure: deletes every key of the customer (its hash tag); returns how many."""
        pattern = _glob_escape(f"{self.prefix}{{{customer_id}}}") + "*"
        keys = list(self.client.scan_iter(match=pattern, count=500))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start:start + 500])
        return len(keys)

    def close(self) -> None:
        """Closes the client's connections."""
        self.client.close()


def _field(parcel: ParcelStatus | None) -> str:
    return f"m:{parcel.status}:{parcel.channel}" if parcel else ""


def _glob_escape(text: str) -> str:
    """Escapes Redis glob metacharacters so the prefix and tag match literally."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
