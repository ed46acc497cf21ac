"""Web Push (RFC 8030/8291/8292) with `pywebpush`: aes128gcm payloads signed with VAPID.

The address is the browser's PushSubscription as JSON (`endpoint`, `keys.p256dh`,
`keys.auth`). The notice's Topic comes from the parcel's tracking number, so a newer status
replaces an older notice still waiting in the push service. 404/410 mean the subscription is
gone: the result asks the hub to deactivate it. Crash reconciliation: push services keep no
queryable record, so `reconcile` returns None.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from py_vapid import Vapid, b64urlencode
from pywebpush import WebPusher, WebPushException

from channels.base import OutgoingMessage, SendResult
from channels.errors import (
    DEAD_ADDRESS,
    PERMANENT,
    TRANSIENT,
    ConfigurationError,
    ErrorTable,
    parse_retry_after,
)
from channels.push_endpoints import (
    DEFAULT_PUSH_HOSTS,
    PushEndpointError,
    Resolver,
    check_resolved,
    resolve,
)

# Push service answers (RFC 8030 §5, and what FCM/Mozilla autopush document).
ERRORS = ErrorTable({
    404: DEAD_ADDRESS,  # unknown subscription
    410: DEAD_ADDRESS,  # subscription expired or unsubscribed
    400: PERMANENT,     # malformed request
    413: PERMANENT,     # payload too large (4 KiB max)
    401: TRANSIENT,     # VAPID rejected: an operator must fix the keys
    403: TRANSIENT,
    429: TRANSIENT,
})
VAPID_LIFETIME = 12 * 3600


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: (private key as base64url raw scalar, public key for browsers)."""
    vapid = Vapid()
    vapid.generate_keys()
    number = vapid.private_key.private_numbers().private_value
    return b64urlencode(number.to_bytes(32, "big")), public_key_of(vapid)


def public_key_of(vapid: Vapid) -> str:
    """The applicationServerKey browsers pass to PushManager.subscribe (base64url point)."""
    point = vapid.public_key.public_bytes(
        encoding=_serialization().Encoding.X962,
        format=_serialization().PublicFormat.UncompressedPoint,
    )
    return str(b64urlencode(point))


def _serialization() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


def topic_for(tracking_number: str) -> str:
    """A Topic header value (≤ 32 URL-safe base64 characters) naming the parcel."""
    digest = hashlib.sha256(tracking_number.encode()).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


class WebPushAdapter:
    """Encrypts and posts a JSON notice (title, body, url) to the subscription's endpoint."""

    name = "webpush"

    def __init__(self, private_key: str, subject: str, ttl: int = 86400,
                 session: requests.Session | None = None, timeout: float = 10.0,
                 allowed_hosts: Sequence[str] = DEFAULT_PUSH_HOSTS,
                 resolver: Resolver = resolve) -> None:
        if not private_key:
            raise ConfigurationError("webpush: HUB_VAPID_PRIVATE_KEY (run `hub keys vapid`)")
        if not subject.startswith(("mailto:", "https://")):
            raise ConfigurationError("webpush: HUB_VAPID_SUBJECT must be mailto: or https://")
        self.vapid = Vapid.from_string(private_key)
        self.public_key = public_key_of(self.vapid)
        self.subject = subject
        self.ttl = ttl
        self.session = session or requests.Session()
        # A push service that redirects is not followed: the target was never checked.
        self.session.max_redirects = 0
        self.timeout = timeout
        self.allowed_hosts, self.resolver = tuple(allowed_hosts), resolver
        self._signed: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def vapid_headers(self, endpoint: str) -> dict[str, str]:
        """The VAPID Authorization header for the endpoint's origin (re-signed hourly)."""
        url = urlsplit(endpoint)
        audience = f"{url.scheme}://{url.netloc}"
        now = time.time()
        with self._lock:
            cached = self._signed.get(audience)
            if cached and cached[0] > now + 3600:
                return cached[1]
        expires = int(now) + VAPID_LIFETIME
        headers = dict(self.vapid.sign({"aud": audience, "exp": expires, "sub": self.subject}))
        with self._lock:
            self._signed[audience] = (expires, headers)
        return headers

    def payload(self, message: OutgoingMessage) -> bytes:
        """The JSON the service worker receives."""
        parts, meta = message.parts, message.metadata
        body = {"title": parts.get("title", ""), "body": parts.get("body", ""),
                "url": parts.get("url") or meta.get("url"), "tag": meta.get("tracking_number"),
                "id": message.idempotency_key}
        return json.dumps(body, ensure_ascii=False).encode()

    def send(self, message: OutgoingMessage) -> SendResult:
        """One encrypted POST; the push service's status is classified by ERRORS."""
        try:
            subscription = json.loads(message.address)
            pusher = WebPusher(subscription, requests_session=self.session)
        except (ValueError, WebPushException) as exc:
            return SendResult.permanent(f"webpush: bad subscription: {exc}", deactivate=True)
        try:  # stored before the allow-list existed, or DNS now points inward: never post
            check_resolved(str(subscription.get("endpoint", "")), self.allowed_hosts,
                           self.resolver)
        except PushEndpointError as exc:
            return SendResult.permanent(f"webpush: endpoint refused ({exc.problem})",
                                        deactivate=True)
        meta = message.metadata
        headers = self.vapid_headers(subscription["endpoint"])
        headers["Urgency"] = "high" if meta.get("urgent") else "normal"
        if meta.get("tracking_number"):
            headers["Topic"] = topic_for(str(meta["tracking_number"]))
        try:
            response = pusher.send(self.payload(message), headers, ttl=self.ttl,
                                   timeout=self.timeout)
        except requests.RequestException as exc:
            return SendResult.transient(f"webpush unreachable: {type(exc).__name__}")
        if not isinstance(response, requests.Response):
            return SendResult.transient("webpush: no response")
        if response.status_code > 202:
            return ERRORS.result(response.status_code, None,
                                 # the status only: a push service's body is not ours to
                                 # echo into decisions and the API (it may be anything)
                                 f"webpush {response.status_code}",
                                 parse_retry_after(response.headers.get("Retry-After")))
        location = response.headers.get("Location")
        return SendResult.sent(location or f"webpush:{message.idempotency_key}")

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """Push services keep no queryable record (module doc)."""
        return None
