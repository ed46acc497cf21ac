"""The `app_push` message as both native push adapters (FCM, APNs) read it.

The pipeline hands over `parts` (title, body, optional url and icon) and `metadata`
(platform, app_id, collapse_key, urgent, ttl_seconds, category, data). `AppNotice` turns
that into plain, checked values once, so each adapter only maps them onto its wire format.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import httpx

from channels.base import OutgoingMessage, SendResult

MAX_COLLAPSE_ID = 64  # bytes: APNs' limit on apns-collapse-id
HUB_KEY = "hub_key"  # the idempotency key in every notice's data: the app can drop repeats


@dataclass(frozen=True, slots=True)
class AppNotice:
    """One notice for one app installation."""

    token: str
    platform: str  # "android" or "ios" (an iOS app on Firebase gets its notices through FCM)
    app_id: str
    title: str
    body: str
    url: str | None
    icon: str | None
    collapse_key: str | None
    urgent: bool
    ttl_seconds: int
    category: str
    data: dict[str, str]

    @classmethod
    def of(cls, message: OutgoingMessage, default_ttl: int) -> AppNotice:
        """The notice in `message`; data values become strings, the hub key is added."""
        parts, meta = message.parts, message.metadata
        data = {str(k): str(v) for k, v in (meta.get("data") or {}).items()}
        data[HUB_KEY] = message.idempotency_key
        if parts.get("url"):
            data["url"] = parts["url"]
        category = str(meta.get("category") or "transactional")
        data.setdefault("category", category)
        ttl = meta.get("ttl_seconds")
        return cls(
            token=message.address.strip(),
            platform=str(meta.get("platform") or "android"),
            app_id=str(meta.get("app_id") or ""),
            title=parts.get("title", ""),
            body=parts.get("body", ""),
            url=parts.get("url") or None,
            icon=parts.get("icon") or None,
            collapse_key=str(meta["collapse_key"]) if meta.get("collapse_key") else None,
            urgent=bool(meta.get("urgent")),
            ttl_seconds=max(0, int(ttl)) if ttl is not None else default_ttl,
            category=category,
            data=data,
        )


def collapse_id(key: str) -> str:
    """An apns-collapse-id: the key itself, or its SHA-256 hex when longer than 64 bytes."""
    if len(key.encode()) <= MAX_COLLAPSE_ID:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def unreachable(provider: str, exc: httpx.HTTPError) -> SendResult:
    """A transport failure. A lost reply after the request went out keeps its type name
    (ReadTimeout; a dropped connection → "RemoteDisconnected") so hub.delivery treats the
    outcome as unknown and never resends it; a refused or timed-out connect stays a plain
    transient error."""
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return SendResult.transient(f"{provider}: RemoteDisconnected before the answer")
    return SendResult.transient(f"{provider} unreachable: {type(exc).__name__}")
