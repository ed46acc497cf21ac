"""The limiter's question and answer, and the interface the pipeline calls."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DEFER = "defer"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class ThrottleRequest:
    """One (event, channel) about to be sent."""

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


@dataclass(frozen=True, slots=True)
class ThrottleDecision:
    verdict: Verdict
    reason: str
    until: datetime | None = None


class Limiter(Protocol):
    """Checks a request and reserves its slot; `release` gives the slot back if not sent."""

    def check(self, request: ThrottleRequest) -> ThrottleDecision: ...

    def release(self, request: ThrottleRequest) -> None: ...


class AllowAll:
    """The limiter with no rules: every message may go now."""

    def check(self, request: ThrottleRequest) -> ThrottleDecision:
        return ThrottleDecision(Verdict.ALLOW, "no_limit")

    def release(self, request: ThrottleRequest) -> None:
        return None
