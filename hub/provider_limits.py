"""The send path's side of provider rate limits (`channels.ratelimit`): wait for a slot
before the provider call, slow the bucket down when the provider answers 429/Retry-After.

`hub.delivery.call` calls `wait_turn` just before the provider call, after the engine has
committed the send record as `sending` (a process killed while waiting leaves that record to
be reconciled like a crash mid-call), and `after_send` with the provider's answer. The
limiter is built once per process from the process settings.
"""

from __future__ import annotations

import threading

from channels import ChannelAdapter, ErrorClass, SendResult
from channels.ratelimit import (
    ProviderRateLimiter,
    RateLimitTimeout,
    adapter_key,
    build_rate_limiter,
)
from hub.logs import get_logger
from hub.metrics import RATE_LIMIT_DEFERRED, RATE_LIMIT_PENALTIES, RATE_LIMIT_WAIT
from hub.settings import Settings, get_settings

log = get_logger("rate_limit")
_UNBUILT = object()
_process: object = _UNBUILT
_lock = threading.Lock()


def process_rate_limiter() -> ProviderRateLimiter | None:
    """This process's limiter (None: no HUB_<PROVIDER>_MPS set), built on first use."""
    global _process
    with _lock:
        if _process is _UNBUILT:
            _process = build_rate_limiter(get_settings())
        return _process  # type: ignore[return-value]


def reset_process_rate_limiter() -> None:
    """Forgets the process limiter (settings changed: tests, `hub demo`)."""
    global _process
    with _lock:
        if _process is not _UNBUILT and _process is not None:
            _process.close()  # type: ignore[attr-defined]
        _process = _UNBUILT


def wait_turn(adapter: ChannelAdapter, limiter: ProviderRateLimiter | None = None,
              settings: Settings | None = None) -> SendResult | None:
    """Blocks until the adapter's provider may take one more message. Returns None to go
    on, or a not-attempted result (defer, no attempt counted) if the next slot is further
    than HUB_RATE_LIMIT_MAX_WAIT_SECONDS."""
    limiter = limiter or process_rate_limiter()
    if limiter is None:
        return None
    max_wait = (settings or get_settings()).rate_limit_max_wait_seconds
    try:
        waited = limiter.acquire(adapter_key(adapter), timeout=max_wait)
    except RateLimitTimeout as exc:
        RATE_LIMIT_DEFERRED.labels(adapter.name).inc()
        return SendResult.not_attempted(
            f"{adapter.name}: provider rate limit, next slot in {exc.wait:.1f} s", exc.wait)
    RATE_LIMIT_WAIT.labels(adapter.name).observe(waited)
    return None


def after_send(adapter: ChannelAdapter, result: SendResult,
               limiter: ProviderRateLimiter | None = None) -> None:
    """A provider that asks to slow down (a transient answer with Retry-After: 429, or 503)
    pauses its bucket for that long, for every sender thread and process."""
    if (result.error_class is not ErrorClass.TRANSIENT or result.circuit_open
            or not result.retry_after):
        return
    limiter = limiter or process_rate_limiter()
    if limiter is None:
        return
    limiter.penalize(adapter_key(adapter), result.retry_after)
    RATE_LIMIT_PENALTIES.labels(adapter.name).inc()
    log.info("rate_limit_penalty", provider=adapter.name, retry_after=result.retry_after)
