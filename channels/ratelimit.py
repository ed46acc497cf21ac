"""Provider rate limits: messages per second per provider and sender, as token buckets.

Every provider caps how fast one account or sender may submit (Twilio per `From` number,
SendGrid per API key, an SMTP relay per connection...). Going faster earns 429s, which burn
retries and may get the sender blocked. A sender thread calls `acquire(key)` before each
provider call; it blocks until the bucket has a token and never drops the message. When the
provider still answers 429 with `Retry-After`, `penalize(key, seconds)` gives no tokens to
anyone until then.

The bucket is a GCRA (generic cell rate algorithm): a single "theoretical arrival time" per
key. `acquire` reserves the next free slot in one atomic step and sleeps until it, so waiters
are served first come, first served (also across processes sharing Redis) without polling.
A penalty that arrives while a caller sleeps towards its slot cancels that slot: the caller
checks once after waking and reserves again.

Backends: `channels.ratelimit_memory` (one process: the embedded worker) and
`channels.ratelimit_redis` (every process sharing one Redis: scale-out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, Protocol


class RateLimitTimeout(TimeoutError):
    """No token within the caller's timeout; nothing was reserved. `wait` says how long the
    caller would have had to wait (defer the message by that much)."""

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"{key}: next slot in {wait:.2f} s")
        self.key = key
        self.wait = wait


class ProviderRateLimiter(Protocol):
    """What the send path calls; thread-safe."""

    def acquire(self, key: str, timeout: float | None = None) -> float:
        """Blocks until `key` may send one message; returns the seconds waited. Raises
        RateLimitTimeout (without taking a token) if that would take longer than `timeout`."""
        ...

    def penalize(self, key: str, retry_after: float) -> None:
        """The provider answered 429 with Retry-After: no tokens for `key` until then."""
        ...

    def close(self) -> None:
        """Frees connections."""
        ...


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_second` messages on average; `burst` of them may go back to back after a pause."""

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        """How far ahead of the steady pace a caller may go (the burst, in seconds)."""
        return (self.burst - 1) * self.interval


@dataclass(frozen=True, slots=True)
class RateTable:
    """The rate of each key: an exact `provider:sender` entry wins over the provider's rate.

    A provider's rate applies to each of its senders separately (one bucket per key); a
    provider without a rate is unlimited.
    """

    providers: Mapping[str, Rate] = field(default_factory=dict)
    senders: Mapping[str, Rate] = field(default_factory=dict)

    def rate(self, key: str) -> Rate | None:
        """The rate for a key made by `limit_key`, or None (unlimited)."""
        if key in self.senders:
            return self.senders[key]
        return self.providers.get(key.split(":", 1)[0])

    def __bool__(self) -> bool:
        return bool(self.providers or self.senders)


def limit_key(provider: str, sender: str | None = None) -> str:
    """The bucket key of a provider and one of its senders (`twilio:+48500100200`)."""
    if not sender:
        return provider
    if "<" in sender:  # "Parcel Hub <no-reply@example.pl>": the address is the sender
        sender = parseaddr(sender)[1] or sender
    return f"{provider}:{sender}"


def adapter_key(adapter: Any) -> str:
    """The bucket key of an adapter (unwrapping breakers): its name and `sender`, if any."""
    inner = adapter
    while hasattr(inner, "adapter"):  # GuardedAdapter and similar wrappers
        inner = inner.adapter
    sender = getattr(inner, "sender", None)
    return limit_key(str(adapter.name), sender if isinstance(sender, str) else None)


PROVIDERS = ("twilio", "sendgrid", "smtp", "webpush", "apprise", "fcm", "apns")


class RateLimitSettings(Protocol):
    """The settings `build_rate_limiter` reads (the hub's `Settings` has them all)."""

    @property
    def twilio_mps(self) -> float | None: ...
    @property
    def sendgrid_mps(self) -> float | None: ...
    @property
    def smtp_mps(self) -> float | None: ...
    @property
    def webpush_mps(self) -> float | None: ...
    @property
    def apprise_mps(self) -> float | None: ...
    @property
    def fcm_mps(self) -> float | None: ...
    @property
    def apns_mps(self) -> float | None: ...
    @property
    def rate_limit_senders(self) -> Mapping[str, float]: ...
    @property
    def rate_limit_burst(self) -> int: ...
    @property
    def rate_limit_backend(self) -> str: ...
    @property
    def rate_limit_redis_prefix(self) -> str: ...
    @property
    def redis_url(self) -> str | None: ...


def rate_table(settings: RateLimitSettings) -> RateTable:
    """The configured rates: HUB_<PROVIDER>_MPS and the HUB_RATE_LIMIT_SENDERS overrides."""
    burst = settings.rate_limit_burst
    providers = {name: Rate(mps, burst) for name in PROVIDERS
                 if (mps := getattr(settings, f"{name}_mps")) is not None}
    senders = {key: Rate(mps, burst) for key, mps in settings.rate_limit_senders.items()}
    return RateTable(providers, senders)


def build_rate_limiter(settings: RateLimitSettings) -> ProviderRateLimiter | None:
    """The limiter for these settings: None when no rate is set; Redis-shared when the
    backend is `redis`, or `auto` with HUB_REDIS_URL set; otherwise in this process."""
    table = rate_table(settings)
    if not table:
        return None
    backend = settings.rate_limit_backend
    if backend == "auto":
        backend = "redis" if settings.redis_url else "memory"
    if backend == "redis":
        if not settings.redis_url:
            raise ValueError("HUB_RATE_LIMIT_BACKEND=redis needs HUB_REDIS_URL")
        from channels.ratelimit_redis import RedisRateLimiter

        return RedisRateLimiter.from_url(settings.redis_url, table,
                                         settings.rate_limit_redis_prefix)
    from channels.ratelimit_memory import MemoryRateLimiter

    return MemoryRateLimiter(table)
