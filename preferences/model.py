"""Plain values the resolver reads and returns (no I/O, no hub imports)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import time

SUPPORTED_LOCALES = ("pl", "en", "uk", "de")
FALLBACK_LOCALES = ("pl", "en")
# app_push: the carrier's app (FCM/APNs); inbox: the app's message list (written by the hub).
CHANNELS = ("sms", "email", "push", "app_push", "inbox")
# Copy channels receive every message the customer may get there, alongside whichever channel
# of the order delivers it; they are never a fallback and never stop the order.
COPY_CHANNELS = frozenset({"inbox"})
CATEGORIES = ("transactional", "loyalty", "marketing", "feedback")
TONES = ("formal", "informal")
SEGMENTS = ("individual", "business")
DEFAULT_TIME_ZONE = "Europe/Warsaw"
DEFAULT_CHANNELS: dict[str, tuple[str, ...]] = {
    # App push first: free, instant, replaced per parcel on the phone; without an active
    # device it is skipped (no_address) and SMS carries the notice as before.
    "transactional": ("app_push", "sms", "email", "push", "inbox"),
    "loyalty": ("email", "app_push", "push", "sms", "inbox"),
    "marketing": ("email", "app_push", "push", "sms", "inbox"),
    # Delivery feedback requests: e-mail first (it carries the one-tap 0-10 links).
    "feedback": ("email", "app_push", "push", "sms", "inbox"),
}
# Categories sent only with a current, unwithdrawn consent for that purpose and channel.
CONSENT_CATEGORIES = frozenset({"loyalty", "marketing"})
# Categories sent on legitimate interest unless the customer opted out (no consent needed):
# untick every channel of the category in the preference center to opt out.
OPT_OUT_CATEGORIES = frozenset({"feedback"})


class RouteAction(enum.StrEnum):
    SEND = "send"
    SKIP = "skip"


class SendReason(enum.StrEnum):
    """Why a channel may be used."""

    ELIGIBLE = "eligible"


class SkipReason(enum.StrEnum):
    """Why a channel is not used for an event."""

    ERASED = "erased"
    CHANNEL_DISABLED = "channel_disabled"
    OPTED_OUT_EVENT = "opted_out_event"
    OPTED_OUT_CATEGORY = "opted_out_category"
    NOT_IN_FREQUENCY_CHOICE = "not_in_frequency_choice"
    OPTED_OUT_CHANNEL = "opted_out_channel"
    NO_CONSENT = "no_consent"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    NO_ADDRESS = "no_address"
    ADDRESS_UNVERIFIED = "address_unverified"
    NOT_IN_CAMPAIGN = "not_in_campaign"


class Frequency(enum.StrEnum):
    """How much the customer wants to hear."""

    ALL = "all"
    IMPORTANT = "important"  # urgent parcel notices only
    DIGEST = "digest"  # urgent notices now, the rest collected for a daily digest


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's push subscription (the standard PushSubscription JSON, flattened)."""

    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class AppDevice:
    """An active installation of the carrier's app: its push token and platform."""

    device_id: int
    platform: str  # "android" (FCM) or "ios" (APNs)
    token: str
    app_id: str


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A nightly window in the customer's time zone (may wrap past midnight)."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Profile:
    """Who the recipient is and where they can be reached."""

    customer_id: str
    locale: str = "pl"
    tone: str = "formal"
    time_zone: str = DEFAULT_TIME_ZONE
    segment: str = "individual"
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    phone_verified: bool = False
    email_verified: bool = False
    push_subscriptions: tuple[PushSubscription, ...] = ()
    devices: tuple[AppDevice, ...] = ()  # active app installations, newest first
    has_app: bool = False  # any app installation ever registered: the inbox is readable
    erased: bool = False

    def address_for(self, channel: str) -> str | None:
        """The address a channel would use, if the profile has one.

        Push uses the newest active subscription, as the PushSubscription JSON text
        (`{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}`) that WebPush libraries take.
        App push names the newest active device's token (the engine sends to every active
        device); the inbox is addressed by the customer id once the app was ever installed.
        """
        if channel == "sms":
            return self.phone
        if channel == "email":
            return self.email
        if channel == "push" and self.push_subscriptions:
            sub = self.push_subscriptions[0]
            info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
            return json.dumps(info, separators=(",", ":"))
        if channel == "app_push" and self.devices:
            return self.devices[0].token
        if channel == "inbox" and self.has_app:
            return self.customer_id
        return None

    def verified(self, channel: str) -> bool:
        """Whether the channel's address was confirmed by its owner (push, app push and the
        inbox always are: the customer's own browser or app registered them)."""
        if channel == "sms":
            return self.phone_verified
        if channel == "email":
            return self.email_verified
        return channel in ("push", "app_push", "inbox")


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the customer chose; `Preferences()` is the default for a new customer."""

    channels: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    event_opt_outs: frozenset[str] = frozenset()
    quiet_hours: QuietHours | None = None
    frequency: Frequency = Frequency.ALL

    def order_for(self, category: str) -> tuple[str, ...]:
        """The customer's channels for a category, preferred first."""
        chosen = self.channels.get(category)
        return DEFAULT_CHANNELS.get(category, CHANNELS) if chosen is None else chosen


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What the resolver needs to know about the event."""

    type: str
    category: str
    urgent: bool = False
    # A campaign's channel order (issue 13): only these channels, in this order; the
    # customer's choices and consents still apply to each. None: the customer's order.
    channels: tuple[str, ...] | None = None


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
    quiet_hours: QuietHours | None = None

    @property
    def sendable(self) -> tuple[Route, ...]:
        """The routes that may be used, in the customer's order."""
        return tuple(r for r in self.routes if r.action is RouteAction.SEND)
