"""Plain values the resolver reads and returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

SUPPORTED_LOCALES = ("pl", "en", "uk", "de")
DEFAULT_CHANNELS: dict[str, tuple[str, ...]] = {
    "transactional": ("sms", "email", "push"),
    "loyalty": ("email", "push", "sms"),
    "marketing": ("email", "push", "sms"),
}


class RouteAction(enum.StrEnum):
    SEND = "send"
    SKIP = "skip"


class SkipReason(enum.StrEnum):
    """Why a channel is not used for an event."""

    NO_ADDRESS = "no_address"


@dataclass(frozen=True, slots=True)
class Profile:
    """What the resolver knows about a recipient."""

    customer_id: str
    locale: str = "pl"
    tone: str = "formal"
    time_zone: str = "Europe/Warsaw"
    segment: str = "individual"
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    push_endpoints: tuple[str, ...] = ()
    channels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def address_for(self, channel: str) -> str | None:
        """The address a channel would use, if the profile has one."""
        if channel == "sms":
            return self.phone
        if channel == "email":
            return self.email
        if channel == "push":
            return self.push_endpoints[0] if self.push_endpoints else None
        return None


@dataclass(frozen=True, slots=True)
class Route:
    """One channel's verdict: send to `address`, or skip for `reason`."""

    channel: str
    action: RouteAction
    reason: str
    address: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """Routes in the customer's order (first `send` = preferred, later = fallbacks)."""

    routes: tuple[Route, ...]
    locales: tuple[str, ...]
    tone: str

    @property
    def sendable(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.action is RouteAction.SEND)
