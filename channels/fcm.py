"""Android app push through Firebase Cloud Messaging's HTTP v1 API (`messages:send`).

Auth: an OAuth2 access token for the service account (`google-auth`), cached until shortly
before it expires and refreshed by one thread while the others wait (the engine sends from
up to 64 threads). A 401 means the token was revoked early: refreshed once, sent once more
(FCM refused the first request, so nothing is doubled).

Each parcel's notices share `android.collapse_key` and `android.notification.tag`, so a
newer status replaces the older one still waiting in FCM or shown on the phone.

Crash reconciliation: FCM keeps no queryable record and takes no idempotency key, so
`reconcile` returns None; the key travels in the data as `hub_key` for the app to drop
repeats.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from google.auth import exceptions as auth_exceptions
from google.auth import transport as auth_transport
from google.auth.credentials import TokenState
from google.oauth2 import service_account

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

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
MAX_TTL = 28 * 86400  # FCM refuses a longer ttl
QUOTA_BACKOFF = 60.0  # FCM asks for at least a minute after QUOTA_EXCEEDED without Retry-After

# FCM's errorCode (FcmError detail), else the google.rpc status, else the HTTP status.
ERRORS = ErrorTable({
    "UNREGISTERED": DEAD_ADDRESS,        # app uninstalled or token expired (404)
    "SENDER_ID_MISMATCH": DEAD_ADDRESS,  # token belongs to another Firebase project (403)
    "INVALID_ARGUMENT": PERMANENT,       # bad field, bad token format, message too big (400)
    "QUOTA_EXCEEDED": TRANSIENT,         # per project / device / topic rate limit (429)
    "UNAVAILABLE": TRANSIENT,            # overloaded (503)
    "INTERNAL": TRANSIENT,               # unknown server error (500)
    "THIRD_PARTY_AUTH_ERROR": TRANSIENT,  # APNs/web push credentials in Firebase: operator fix
    "UNAUTHENTICATED": TRANSIENT,        # access token refused after a refresh: operator fix
    "PERMISSION_DENIED": TRANSIENT,      # service account lacks the FCM role: operator fix
    401: TRANSIENT,
    403: TRANSIENT,
    429: TRANSIENT,
})


class _AuthRequest(auth_transport.Request):
    """google-auth's transport over the adapter's httpx client (same timeout, no requests)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: dict[str, str] | None = None, timeout: float | None = None,
                 **_: Any) -> _AuthResponse:
        try:
            reply = self.client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise auth_exceptions.TransportError(  # type: ignore[no-untyped-call]
                type(exc).__name__) from exc
        return _AuthResponse(reply)


class _AuthResponse(auth_transport.Response):
    def __init__(self, reply: httpx.Response) -> None:
        self._reply = reply

    @property
    def status(self) -> int:
        return self._reply.status_code

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._reply.headers)

    @property
    def data(self) -> bytes:
        return self._reply.content


def make_client(timeout: float = 10.0) -> httpx.Client:
    """The HTTP client for FCM and Google's token endpoint (keep-alive across threads)."""
    return httpx.Client(timeout=timeout, follow_redirects=False,
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


class FcmAdapter:
    """Posts one `messages:send` per notice, as the service account's project."""

    name = "fcm"
    authoritative_reconcile = False

    def __init__(self, credentials: service_account.Credentials, project_id: str,
                 client: httpx.Client, base_url: str = DEFAULT_BASE_URL,
                 default_ttl: int = 86400) -> None:
        if not project_id:
            raise ConfigurationError("fcm: the service account file has no project_id")
        self.credentials = credentials
        self.project_id = project_id
        self.client = client
        self.send_url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self.default_ttl = default_ttl
        self._auth = _AuthRequest(client)
        self._lock = threading.Lock()

    @classmethod
    def from_service_account_file(cls, path: str, base_url: str = DEFAULT_BASE_URL,
                                  timeout: float = 10.0, default_ttl: int = 86400) -> FcmAdapter:
        """The adapter for a Firebase service-account JSON (its project_id is the sender)."""
        try:
            with open(path, encoding="utf-8") as file:
                info = json.load(file)
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[SCOPE])
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"fcm: HUB_FCM_SERVICE_ACCOUNT_FILE is not a service-account JSON "
                f"({type(exc).__name__})") from exc
        return cls(credentials, str(info.get("project_id") or ""), make_client(timeout),
                   base_url, default_ttl)

    def access_token(self, rejected: str | None = None) -> str:
        """A fresh access token; `rejected` (one FCM refused) is replaced by exactly one
        thread, the others reuse that thread's new token."""
        with self._lock:
            stale = self.credentials.token_state is not TokenState.FRESH
            if stale or (rejected is not None and self.credentials.token == rejected):
                self.credentials.refresh(self._auth)  # type: ignore[no-untyped-call]
            return str(self.credentials.token)

    def body(self, notice: AppNotice) -> dict[str, Any]:
        """The `messages:send` request body: an `android` block, or for an iOS app that
        registered through Firebase, an `apns` block with APNs' own headers."""
        notification: dict[str, str] = {"title": notice.title, "body": notice.body}
        if notice.icon:
            notification["image"] = notice.icon
        if notice.platform == "ios":
            return {"message": {"token": notice.token, "notification": notification,
                                "data": notice.data, "apns": self._apns_block(notice)}}
        android_notification: dict[str, str] = {"channel_id": notice.category}
        android: dict[str, Any] = {
            "priority": "HIGH" if notice.urgent else "NORMAL",
            "ttl": f"{min(notice.ttl_seconds, MAX_TTL)}s",
            "notification": android_notification,
        }
        if notice.app_id:
            android["restricted_package_name"] = notice.app_id
        if notice.collapse_key:
            android["collapse_key"] = notice.collapse_key
            android_notification["tag"] = notice.collapse_key  # replaces it in the tray
        return {"message": {"token": notice.token, "notification": notification,
                            "data": notice.data, "android": android}}

    def _apns_block(self, notice: AppNotice) -> dict[str, Any]:
        """What FCM passes on to APNs: priority by urgency, collapse per parcel, expiry."""
        ttl = min(notice.ttl_seconds, MAX_TTL)
        headers = {"apns-priority": "10" if notice.urgent else "5",
                   "apns-expiration": str(int(time.time()) + ttl if ttl else 0)}
        aps: dict[str, Any] = {}
        if notice.collapse_key:
            headers["apns-collapse-id"] = collapse_id(notice.collapse_key)
            aps["thread-id"] = notice.collapse_key
        if notice.urgent:
            aps["sound"] = "default"
        return {"headers": headers, "payload": {"aps": aps}}

    def send(self, message: OutgoingMessage) -> SendResult:
        """One `messages:send`; FCM's answer is classified by ERRORS."""
        notice = AppNotice.of(message, self.default_ttl)
        if not notice.token:
            return SendResult.permanent("fcm: empty registration token", deactivate=True)
        body = self.body(notice)
        token: str | None = None
        for _ in range(2):  # the second round only after a 401 with a refreshed token
            try:
                token = self.access_token(rejected=token)
            except (auth_exceptions.GoogleAuthError, httpx.HTTPError) as exc:
                # nothing was sent: the detail must not read like a lost reply
                return SendResult.transient(f"fcm: no access token ({type(exc).__name__})")
            try:
                reply = self.client.post(self.send_url, json=body,
                                         headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                return unreachable("fcm", exc)
            if reply.status_code != 401:
                break
        return self._result(reply, message.idempotency_key)

    def _result(self, reply: httpx.Response, key: str) -> SendResult:
        if reply.status_code == 200:
            return SendResult.sent(str(_json(reply).get("name") or f"fcm:{key}"))
        code = fcm_error_code(_json(reply))
        retry_after = parse_retry_after(reply.headers.get("Retry-After"))
        if code == "QUOTA_EXCEEDED" and retry_after is None:
            retry_after = QUOTA_BACKOFF
        if code == "INVALID_ARGUMENT" and "message.token" in _violated_fields(_json(reply)):
            # the token itself is malformed (not one FCM issued): the device is dead
            return SendResult.permanent("fcm 400 INVALID_ARGUMENT (message.token)",
                                        deactivate=True)
        # status and code only: FCM's message may echo the token
        return ERRORS.result(reply.status_code, code, f"fcm {reply.status_code} {code or ''}"
                             .rstrip(), retry_after)

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """FCM cannot be asked about a past message (module doc)."""
        return None


def fcm_error_code(answer: dict[str, Any]) -> str | None:
    """FCM's errorCode from the FcmError detail, else the google.rpc status name."""
    error = answer.get("error")
    if not isinstance(error, dict):
        return None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("FcmError"):
            return str(detail.get("errorCode") or "") or None
    return str(error.get("status") or "") or None


def _violated_fields(answer: dict[str, Any]) -> set[str]:
    """The fields a google.rpc.BadRequest detail names (FCM names `message.token` when the
    registration token is malformed)."""
    error = answer.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    return {str(v.get("field")) for d in details or [] if isinstance(d, dict)
            and str(d.get("@type", "")).endswith("google.rpc.BadRequest")
            for v in d.get("fieldViolations") or [] if isinstance(v, dict)}


def _json(reply: httpx.Response) -> dict[str, Any]:
    try:
        answer = reply.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
