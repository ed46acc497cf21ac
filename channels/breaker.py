"""Per-provider circuit breaker: an outage defers messages instead of burning their retries.

After `threshold` consecutive transient failures the circuit opens: sends are not attempted
and come back as `SendResult.not_attempted` (the worker defers the job without counting an
attempt). After `cooldown` seconds one probe is let through (half-open); its success closes
the circuit, its failure re-opens it with a doubled cool-down (capped at `max_cooldown`).
Permanent failures say nothing about the provider's health (an invalid number) and count as
successes. State is per process: each worker process learns of an outage on its own.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from channels.base import ChannelAdapter, ErrorClass, OutgoingMessage, SendResult


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When to open, and for how long."""

    threshold: int = 5
    cooldown: float = 10.0
    max_cooldown: float = 300.0


class CircuitBreaker:
    """Thread-safe state of one provider's circuit."""

    def __init__(
        self, policy: BreakerPolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self.state = CircuitState.CLOSED
        self._failures = 0
        self._cooldown = self.policy.cooldown
        self._opened_at = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Seconds until a send may be attempted; 0 means go (and may claim the probe)."""
        with self._lock:
            if self.state is CircuitState.CLOSED:
                return 0.0
            remaining = self._opened_at + self._cooldown - self.clock()
            if remaining > 0:
                return remaining
            if self._probing:
                return min(1.0, self._cooldown)  # someone else's probe is in flight
            self.state, self._probing = CircuitState.HALF_OPEN, True
            return 0.0

    def record(self, result: SendResult) -> bool:
        """Feeds a provider answer back; True when this answer opened a closed circuit."""
        with self._lock:
            failed = result.error_class is ErrorClass.TRANSIENT and not result.circuit_open
            if not failed:
                self.state, self._failures, self._probing = CircuitState.CLOSED, 0, False
                self._cooldown = self.policy.cooldown
                return False
            self._failures += 1
            if self.state is CircuitState.HALF_OPEN:
                self._cooldown = min(self._cooldown * 2, self.policy.max_cooldown)
                self._open()
            elif self.state is CircuitState.CLOSED and self._failures >= self.policy.threshold:
                self._open()
                return True
            return False

    def _open(self) -> None:
        self.state, self._opened_at, self._probing = CircuitState.OPEN, self.clock(), False


class GuardedAdapter:
    """Wraps an adapter with its provider's circuit breaker; same protocol as the adapter."""

    def __init__(self, adapter: ChannelAdapter, breaker: CircuitBreaker,
                 on_open: Callable[[str], None] | None = None) -> None:
        self.adapter = adapter
        self.breaker = breaker
        self.name = adapter.name
        self.on_open = on_open
        # whether the wrapped adapter's "not found" means "never sent" (see hub.delivery)
        self.authoritative_reconcile = bool(getattr(adapter, "authoritative_reconcile", False))

    def send(self, message: OutgoingMessage) -> SendResult:
        """Sends unless the circuit is open; the answer feeds the breaker."""
        wait = self.breaker.wait()
        if wait > 0:
            return SendResult.not_attempted(f"{self.name}: circuit open", retry_after=wait)
        probe = self.breaker.state is CircuitState.HALF_OPEN  # only the prober gets here then
        result = self.adapter.send(message)
        if self.breaker.record(result) and self.on_open is not None:
            self.on_open(self.name)  # outside the breaker's lock: alerts do I/O
        if probe and result.error_class is ErrorClass.TRANSIENT:
            # A failed probe says the provider is still down, nothing about this message:
            # it waits like the others instead of spending one of its attempts.
            return SendResult.not_attempted(
                f"{self.name}: circuit still open (probe failed: {result.error})",
                retry_after=self.breaker.wait() or self.breaker.policy.cooldown)
        return result

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """Delegates to the wrapped adapter."""
        return self.adapter.reconcile(idempotency_key)
