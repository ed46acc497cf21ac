"""The app_push channel: one message per active device of the customer, sent through the
platform's provider (FCM for Android, APNs for iOS), and one decision for the channel.

How a route's answers combine (`combine`): the channel is `sent` if any device accepted the
message; deferred if none did but one may still (a transient error, an open circuit, a send
in doubt); failed, so that the next channel of the customer's order is tried, only when every
device failed for good. Dead tokens are deactivated as their answers are recorded
(`hub.receipts.deactivate_address`), so the next event no longer sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from channels import ChannelAdapter
from hub.devices import is_apns_token
from hub.lanes import Lane, lane_of
from hub.loading import Loaded
from hub.outcomes import ChannelDecision, Outcome
from preferences import AppDevice

CHANNEL = "app_push"
PROVIDERS = ("fcm", "apns")  # the transports keys behind app_push (see provider_of)
MAX_TTL = timedelta(days=28)  # FCM keeps a message at most 4 weeks
MIN_TTL = timedelta(minutes=5)
DEFAULT_TTL = timedelta(days=2)
# How long a notice is worth showing if the phone is offline. A pickup notice lives until
# its deadline; the courier's "on the way" only on the day of delivery.
TTL_BY_TYPE: dict[str, timedelta] = {
    "parcel.out_for_delivery": timedelta(hours=8),
    "parcel.delivery_attempt_failed": timedelta(days=1),
    "parcel.delivery_rescheduled": timedelta(days=1),
    "parcel.delayed": timedelta(days=1),
    "parcel.label_created": timedelta(days=1),
    "parcel.in_transit": timedelta(days=1),
    "parcel.delivered": timedelta(days=1),
    "parcel.feedback_request": timedelta(days=7),
}
UNTIL_DEADLINE = frozenset({"parcel.ready_for_pickup", "parcel.pickup_reminder"})


def ttl_seconds(event_type: str, parcel: dict[str, Any], now: datetime) -> int:
    """Seconds the provider keeps the message for an offline phone."""
    ttl = TTL_BY_TYPE.get(event_type, DEFAULT_TTL)
    deadline = (parcel.get("pickup_point") or {}).get("deadline")
    if event_type in UNTIL_DEADLINE and deadline:
        ttl = datetime.fromisoformat(str(deadline)) - now
    return int(min(MAX_TTL, max(MIN_TTL, ttl)).total_seconds())


def device_metadata(loaded: Loaded, device: AppDevice, base: dict[str, Any], now: datetime
                    ) -> dict[str, Any]:
    """What the FCM and APNs adapters read: platform, collapse per parcel, urgency (the
    event's lane: urgent notices get high priority), TTL, and string-only data for the app."""
    payload, etype = loaded.payload, loaded.etype
    parcel = payload.get("parcel") or {}
    tracking = parcel.get("tracking_number")
    data = {"event_type": etype.name, "event_id": str(payload["event_id"]),
            "category": etype.category}
    if tracking:
        data["tracking_number"] = str(tracking)
    if base.get("url"):
        data["url"] = str(base["url"])
    return {**base, "platform": device.platform, "app_id": device.app_id,
            "collapse_key": tracking or etype.name,
            "urgent": lane_of(etype, payload, now) is Lane.URGENT,
            "ttl_seconds": ttl_seconds(etype.name, parcel, now),
            "category": etype.category, "data": data}


def combine(decisions: list[ChannelDecision]) -> ChannelDecision:
    """One decision for the channel from its devices' decisions (see the module doc)."""
    if len(decisions) == 1:
        return decisions[0]
    total = len(decisions)
    sent = [d for d in decisions if d.outcome is Outcome.SENT]
    if sent:
        reason = "sent" if any(d.reason == "sent" for d in sent) else "send_unconfirmed"
        details = "; ".join(d.detail or d.reason for d in sent)
        return ChannelDecision(CHANNEL, Outcome.SENT, reason,
                               f"{len(sent)} of {total} devices: {details}")
    deferred = [d for d in decisions if d.outcome is Outcome.DEFERRED]
    if deferred:  # a backoff retry first; else wait for the latest of the known times
        transient = [d for d in deferred if d.until is None]
        if transient:
            return transient[0]
        return max(deferred, key=lambda d: d.until or datetime.min)
    skipped = [d for d in decisions if d.outcome is Outcome.SKIPPED]
    if skipped:  # erased while in flight
        return skipped[0]
    details = "; ".join(d.detail or d.reason for d in decisions)
    return ChannelDecision(CHANNEL, Outcome.FAILED, "provider_permanent",
                           f"all {total} devices failed: {details}")


def provider_of(platform: str, token: str) -> str:
    """The transports key that reaches a device: FCM for Android and for iOS apps that
    registered through Firebase (an FCM token), APNs for an APNs device token."""
    return "apns" if platform == "ios" and is_apns_token(token) else "fcm"


def enabled_channels(transports: Mapping[str, ChannelAdapter]) -> frozenset[str]:
    """The logical channels the hub carries: the transports' keys, with app_push when a
    platform's provider (fcm, apns) is there."""
    keys = frozenset(transports)
    return keys | {CHANNEL} if keys & set(PROVIDERS) else keys


def targets(loaded: Loaded, transports: Mapping[str, ChannelAdapter], base: dict[str, Any],
            now: datetime) -> list[tuple[ChannelAdapter | None, str, dict[str, Any]]]:
    """(adapter, token, metadata) for each active device of the customer, newest first; the
    adapter is None for a platform no provider carries."""
    return [(transports.get(provider_of(device.platform, device.token)), device.token,
             device_metadata(loaded, device, base, now))
            for device in loaded.recipient.profile.devices]
