"""The per-provider circuit breaker, on a fake clock."""

from __future__ import annotations

from channels import OutgoingMessage, SendResult
from channels.breaker import BreakerPolicy, CircuitBreaker, CircuitState, GuardedAdapter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    name = "scripted"

    def __init__(self) -> None:
        self.results: list[SendResult] = []
        self.calls = 0

    def send(self, message: OutgoingMessage) -> SendResult:
        self.calls += 1
        return self.results.pop(0) if self.results else SendResult.sent("ok")

    def reconcile(self, key: str) -> SendResult | None:
        return None


MSG = OutgoingMessage("k", "sms", "+48512345678", {"body": "x"}, "pl")


def test_opens_after_threshold_defers_then_probes_and_closes():
    clock, inner = Clock(), Scripted()
    guarded = GuardedAdapter(inner, CircuitBreaker(BreakerPolicy(3, 10, 40), clock))
    inner.results = [SendResult.transient("500")] * 3
    assert all(not guarded.send(MSG).ok for _ in range(3))
    assert guarded.breaker.state is CircuitState.OPEN
    blocked = guarded.send(MSG)
    assert blocked.circuit_open and blocked.retry_after == 10 and inner.calls == 3
    clock.now = 10.0
    inner.results = [SendResult.transient("500")]
    assert not guarded.send(MSG).ok and inner.calls == 4  # the probe failed
    clock.now = 29.0
    assert guarded.send(MSG).retry_after == 1.0  # cool-down doubled to 20 s
    clock.now = 30.0
    assert guarded.send(MSG).ok and guarded.breaker.state is CircuitState.CLOSED


def test_permanent_failures_do_not_open_and_one_probe_at_a_time():
    clock, inner = Clock(), Scripted()
    breaker = CircuitBreaker(BreakerPolicy(2, 5, 5), clock)
    guarded = GuardedAdapter(inner, breaker)
    inner.results = [SendResult.permanent("21211")] * 5
    for _ in range(5):
        guarded.send(MSG)
    assert breaker.state is CircuitState.CLOSED
    for _ in range(2):
        breaker.record(SendResult.transient("timeout"))
    clock.now = 5.0
    assert breaker.wait() == 0.0  # this caller holds the probe
    assert breaker.wait() > 0  # others keep waiting while it is in flight


def test_failed_probe_does_not_spend_the_carrier_message_attempt():
    clock, inner = Clock(), Scripted()
    guarded = GuardedAdapter(inner, CircuitBreaker(BreakerPolicy(1, 10, 40), clock))
    inner.results = [SendResult.transient("500"), SendResult.transient("500 again")]
    assert not guarded.send(MSG).circuit_open  # the failure that opens it is a real attempt
    clock.now = 10.0
    probe = guarded.send(MSG)  # half-open: this message carries the probe, which fails
    assert inner.calls == 2
    assert probe.circuit_open and "probe failed: 500 again" in (probe.error or "")
    assert probe.retry_after == 20.0  # the doubled cool-down
    assert guarded.breaker.state is CircuitState.OPEN
