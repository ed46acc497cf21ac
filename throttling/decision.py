"""The limiter's question and answer, and the interface the pipeline calls."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DEFER = "defer"
    DROP = "drop"


class Reason(enum.StrEnum):
    """Why the limiter allowed, deferred or dropped a message (caps add `:<rule>`)."""

    WITHIN_LIMITS = "within_limits"
    NO_LIMIT = "no_limit"
    CAP_EXCEEDED = "cap_exceeded"
    QUIET_HOURS = "quiet_hours"
    COLLAPSE_HOLD = "collapse_hold"
    SUPERSEDED = "superseded"
    STALE_STATUS = "stale_status"
    DUPLICATE = "duplicate"
    DIGEST_HELD = "digest_held"
    DIGEST_MERGED = "digest_merged"
    DIGEST_RELEASE = "digest_release"


def cap_reason(rule: str) -> str:
    """The reason code for a cap named `rule`: `cap_exceeded:<rule>`."""
    return f"{Reason.CAP_EXCEEDED}:{rule}"


@dataclass(frozen=True, slots=True)
class ThrottleRequest:
    """One (event, channel) about to be sent, with the customer's choices as plain values.

    `event_ref` identifies the event (the hub passes its primary key): it makes the slot
    reservation idempotent per (event, channel) and lets `release` find the slot again.
    `overrides` is the customer's throttling preferences as plain data (see
    `throttling.policy.CustomerOverrides.from_mapping` for the accepted keys).
    """

    customer_id: str
    channel: str
    category: str
    event_type: str
    occurred_at: datetime
    now: datetime
    tracking_number: str | None = None
    status_rank: int = 0
    urgent: bool = False
    time_zone: str = "Europe/Warsaw"
    event_ref: str = ""
    deadline: datetime | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The slot owner: one per (event, channel)."""
        ref = self.event_ref or f"{self.event_type}@{self.occurred_at.isoformat()}"
        return f"{ref}|{self.channel}"


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One held loyalty/marketing message waiting for the customer's digest hour."""

    token: str
    event_type: str
    category: str
    occurred_at: datetime
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DigestBatch:
    """The held messages released together as one digest message on one channel."""

    customer_id: str
    channel: str
    due: datetime
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class ThrottleDecision:
    """The verdict with its reason code; `until` for a deferral, `digest` for a digest release."""

    verdict: Verdict
    reason: str
    until: datetime | None = None
    digest: DigestBatch | None = None


class Limiter(Protocol):
    """Checks a request and reserves its slot; `release` gives the slot back if not sent."""

    def check(self, request: ThrottleRequest) -> ThrottleDecision: ...

    def release(self, request: ThrottleRequest) -> None: ...


class AllowAll:
    """The limiter with no rules: every message may go now."""

    def check(self, request: ThrottleRequest) -> ThrottleDecision:
        """Always allows."""
        return ThrottleDecision(Verdict.ALLOW, Reason.NO_LIMIT)

    def release(self, request: ThrottleRequest) -> None:
        """Nothing to give back."""
        return None
