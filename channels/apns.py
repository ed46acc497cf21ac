"""iOS app push through the Apple Push Notification service (HTTP/2, token-based auth).

Auth: an ES256 JWT signed with the team's .p8 key (`kid` = key id, `iss` = team id, `iat`).
Apple refuses tokens older than an hour and throttles new ones issued more often than every
20 minutes, so one token is shared by every thread and replaced after 50 minutes, or once
when APNs calls it expired/invalid (then the request is repeated: APNs refused it, so
nothing is doubled). All sends share one HTTP/2 connection (as Apple recommends), driven by
one event loop for every sender thread.

Headers: `apns-topic` is the bundle id, `apns-collapse-id` the parcel's collapse key (a
newer status replaces the older one), `apns-priority` 10 only for urgent notices,
`apns-expiration` from the ttl, `apns-id` a UUID derived from the idempotency key.

Crash reconciliation: APNs keeps no queryable record, so `reconcile` returns None.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from channels.base import OutgoingMessage, SendResult
from channels.errors import (
    DEAD_ADDRESS,
    PERMANENT,
    TRANSIENT,
    ConfigurationError,
    ErrorTable,
    parse_retry_after,
)
from channels.native_push import AppNotice, collapse_id, unreachable

DEFAULT_BASE_URL = "https://api.push.apple.com"
TOKEN_LIFETIME = 50 * 60  # Apple: older than 60 min is ExpiredProviderToken
MAX_PAYLOAD = 4096
DEVICE_TOKEN = re.compile(r"^[0-9a-fA-F]{64,200}$")
_ID_NAMESPACE = uuid.UUID("5d0c7c31-3f9e-4f43-9a61-2a3e51f8c0b7")  # apns-id from the hub key
_TOKEN_REASONS = {"ExpiredProviderToken", "InvalidProviderToken"}

# Apple's `reason` strings, else the HTTP status.
ERRORS = ErrorTable({
    "Unregistered": DEAD_ADDRESS,            # 410: the app is gone from the device
    "BadDeviceToken": DEAD_ADDRESS,          # 400: not a token (or of the sandbox)
    "DeviceTokenNotForTopic": DEAD_ADDRESS,  # 400: token of another app
    "ExpiredToken": DEAD_ADDRESS,            # 410: the token itself expired
    "PayloadTooLarge": PERMANENT,            # 413
    "BadTopic": PERMANENT,                   # 400: app_id is not a bundle id we may push to
    "TopicDisallowed": PERMANENT,
    "BadCollapseId": PERMANENT,
    "BadExpirationDate": PERMANENT,
    "BadMessageId": PERMANENT,
    "BadPriority": PERMANENT,
    "InvalidPushType": PERMANENT,
    "MissingTopic": PERMANENT,
    "PayloadEmpty": PERMANENT,
    "ExpiredProviderToken": TRANSIENT,       # 403: refreshed once; still refused → later
    "InvalidProviderToken": TRANSIENT,       # 403: wrong key id / team id: operator fix
    "MissingProviderToken": TRANSIENT,
    "Forbidden": TRANSIENT,
    "TooManyProviderTokenUpdates": TRANSIENT,  # 429
    "TooManyRequests": TRANSIENT,            # 429: this device gets too many notices
    "IdleTimeout": TRANSIENT,
    "InternalServerError": TRANSIENT,        # 500
    "ServiceUnavailable": TRANSIENT,         # 503
    "Shutdown": TRANSIENT,                   # 503: the server is going away
    403: TRANSIENT,
})


def load_signing_key(path: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 key from an APNs .p8 file (PKCS#8 PEM)."""
    try:
        with open(path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"apns: HUB_APNS_KEY_FILE is not a .p8 key "
                                 f"({type(exc).__name__})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigurationError("apns: HUB_APNS_KEY_FILE must hold a P-256 (ES256) key")
    return key


def make_client(timeout: float = 10.0) -> httpx.AsyncClient:
    """An HTTP/2-only client (TLS with ALPN h2, all APNs accepts); it trusts certifi's CAs,
    or SSL_CERT_FILE when set (a TLS-inspecting proxy, the loopback fake)."""
    return httpx.AsyncClient(http1=False, http2=True, timeout=timeout, follow_redirects=False)


class _EventLoopThread:
    """An asyncio loop on a daemon thread that runs every request of one adapter.

    httpx's *sync* HTTP/2 connection is not safe to share between threads (stream ids are
    taken and their HEADERS written without one lock, so two threads can send them out of
    order and the server ends the connection). Inside one event loop the async connection
    multiplexes the streams of all sender threads correctly.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, call: Coroutine[Any, Any, httpx.Response], timeout: float) -> httpx.Response:
        """The call's result, waited for from a sender thread (the loop starts on first use:
        processes that never send, such as API-only ones, hold no thread)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self.loop.run_forever,
                                                name="apns-http2", daemon=True)
                self._thread.start()
        future = asyncio.run_coroutine_threadsafe(call, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise


def apns_id(idempotency_key: str) -> str:
    """The same UUID for every attempt of one message (APNs echoes it back)."""
    return str(uuid.uuid5(_ID_NAMESPACE, idempotency_key))


class ApnsAdapter:
    """Posts one alert per notice to /3/device/<token> over a shared HTTP/2 connection."""

    name = "apns"
    authoritative_reconcile = False

    def __init__(self, signing_key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str,
                 client: httpx.AsyncClient, base_url: str = DEFAULT_BASE_URL,
                 default_ttl: int = 86400, clock: Callable[[], float] = time.time) -> None:
        if not key_id or not team_id:
            raise ConfigurationError("apns: HUB_APNS_KEY_ID and HUB_APNS_TEAM_ID")
        self.signing_key, self.key_id, self.team_id = signing_key, key_id, team_id
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.default_ttl = default_ttl
        self.clock = clock
        self._token: tuple[float, str] | None = None
        self._lock = threading.Lock()
        self._loop = _EventLoopThread()
        phases = client.timeout
        # a last guard only: httpx's own connect/write/read timeouts end a call first
        self._call_timeout = sum(t or 0.0 for t in (phases.connect, phases.write, phases.read,
                                                    phases.pool)) + 1.0

    @classmethod
    def from_key_file(cls, path: str, key_id: str, team_id: str,
                      base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0,
                      default_ttl: int = 86400) -> ApnsAdapter:
        """The adapter for a .p8 key downloaded from Apple's developer account."""
        return cls(load_signing_key(path), key_id, team_id, make_client(timeout), base_url,
                   default_ttl)

    def provider_token(self, rejected: str | None = None) -> str:
        """The shared JWT; a new one after 50 minutes, or in place of `rejected` (made by
        exactly one thread, so APNs sees no burst of new tokens)."""
        with self._lock:
            now = self.clock()
            if (self._token is None or now - self._token[0] >= TOKEN_LIFETIME
                    or self._token[1] == rejected):
                issued = int(now)
                token = jwt.encode({"iss": self.team_id, "iat": issued}, self.signing_key,
                                   algorithm="ES256", headers={"kid": self.key_id})
                self._token = (float(issued), token)
            return self._token[1]

    def payload(self, notice: AppNotice) -> bytes:
        """The JSON body: `aps` for the system, the hub's data beside it for the app."""
        aps: dict[str, Any] = {"alert": {"title": notice.title, "body": notice.body}}
        if notice.urgent:
            aps["sound"] = "default"
            aps["interruption-level"] = "time-sensitive"
        if notice.collapse_key:
            aps["thread-id"] = notice.collapse_key  # groups a parcel's notices
        if notice.icon:
            aps["mutable-content"] = 1  # lets the app's service extension attach the image
        body: dict[str, Any] = {**notice.data, "aps": aps}
        if notice.icon:
            body["image"] = notice.icon
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def headers(self, notice: AppNotice, idempotency_key: str) -> dict[str, str]:
        """Every apns-* header of the request, without authorization."""
        expiration = 0 if notice.ttl_seconds == 0 else int(self.clock()) + notice.ttl_seconds
        headers = {"apns-topic": notice.app_id, "apns-push-type": "alert",
                   "apns-priority": "10" if notice.urgent else "5",
                   "apns-expiration": str(expiration), "apns-id": apns_id(idempotency_key)}
        if notice.collapse_key:
            headers["apns-collapse-id"] = collapse_id(notice.collapse_key)
        return headers

    def send(self, message: OutgoingMessage) -> SendResult:
        """One POST; APNs' reason is classified by ERRORS."""
        notice = AppNotice.of(message, self.default_ttl)
        if not DEVICE_TOKEN.match(notice.token):  # also keeps the path a single segment
            return SendResult.permanent("apns: BadDeviceToken (not a hex device token)",
                                        deactivate=True)
        if not notice.app_id:
            return SendResult.permanent("apns: no app_id (bundle id) for apns-topic")
        payload = self.payload(notice)
        if len(payload) > MAX_PAYLOAD:
            return SendResult.permanent(f"apns: PayloadTooLarge ({len(payload)} > "
                                        f"{MAX_PAYLOAD} bytes), not sent")
        headers = self.headers(notice, message.idempotency_key)
        url = f"{self.base_url}/3/device/{notice.token}"
        token: str | None = None
        for _ in range(2):  # the second round only with a fresh provider token
            token = self.provider_token(rejected=token)
            call = self.client.post(url, content=payload,
                                    headers={**headers, "authorization": f"bearer {token}"})
            try:
                reply = self._loop.run(call, self._call_timeout)
            except httpx.HTTPError as exc:
                return unreachable("apns", exc)
            except TimeoutError:  # the request may be out: an unknown outcome
                return SendResult.transient("apns: no answer, timed out")
            if reply.status_code != 403 or _reason(reply) not in _TOKEN_REASONS:
                break
        return self._result(reply, headers["apns-id"])

    def _result(self, reply: httpx.Response, sent_id: str) -> SendResult:
        if reply.status_code == 200:
            return SendResult.sent(reply.headers.get("apns-id") or sent_id)
        reason = _reason(reply)
        return ERRORS.result(reply.status_code, reason,
                             f"apns {reply.status_code} {reason or ''}".rstrip(),
                             parse_retry_after(reply.headers.get("Retry-After")))

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """APNs cannot be asked about a past notification (module doc)."""
        return None


def _reason(reply: httpx.Response) -> str | None:
    try:
        answer = reply.json()
    except ValueError:
        return None
    return str(answer.get("reason") or "") or None if isinstance(answer, dict) else None
