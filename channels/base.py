"""The adapter protocol: `send(message) -> SendResult`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class ErrorClass(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A rendered message for one address; `idempotency_key` is unique per (event, channel)."""

    idempotency_key: str
    channel: str
    address: str
    parts: dict[str, str]
    locale: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    """Either a provider message id, or an error with its class."""

    provider_message_id: str | None = None
    error_class: ErrorClass | None = None
    error: str | None = None
    retry_after: float | None = None
    deactivate: bool = False
    """Permanent failures only: the address itself is dead (push 410, invalid number)."""
    opted_out: bool = False
    """Permanent failures only: the recipient withdrew at the provider (Twilio 21610 STOP)."""
    circuit_open: bool = False
    """Not attempted: the provider's circuit breaker is open; retry after `retry_after`."""

    @property
    def ok(self) -> bool:
        return self.error_class is None

    @classmethod
    def sent(cls, provider_message_id: str) -> SendResult:
        return cls(provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, error: str, retry_after: float | None = None) -> SendResult:
        return cls(error_class=ErrorClass.TRANSIENT, error=error, retry_after=retry_after)

    @classmethod
    def permanent(cls, error: str, deactivate: bool = False, opted_out: bool = False,
                  ) -> SendResult:
        return cls(error_class=ErrorClass.PERMANENT, error=error, deactivate=deactivate,
                   opted_out=opted_out)

    @classmethod
    def not_attempted(cls, error: str, retry_after: float) -> SendResult:
        """The provider is known to be down (circuit open): defer, do not count a failure."""
        return cls(error_class=ErrorClass.TRANSIENT, error=error, retry_after=retry_after,
                   circuit_open=True)


class ChannelAdapter(Protocol):
    """What every adapter offers the delivery code."""

    name: str
    # True when `reconcile` returning None proves the provider never got the message
    # (so it is safe to send after a crash); False when None only means "cannot tell".
    authoritative_reconcile: bool

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand the message to the provider; never raises for provider errors."""
        ...

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """After a crash: the result of an earlier send with this key, or None if unknown."""
        ...
