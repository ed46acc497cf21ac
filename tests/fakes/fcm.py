"""Firebase Cloud Messaging HTTP v1: Google's OAuth2 token endpoint (JWT-bearer grant of a
service account) and `messages:send` with FCM's request checks and error bodies.

`service_account_info()` gives the JSON a Firebase console would download, with a fresh RSA
key and `token_uri` pointing at this fake.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.base import FakeServer, Fault, Reply, Request, json_reply

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Google expects its own token endpoint as the assertion's audience, wherever it is posted
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_SEND = re.compile(r"^/v1/projects/([\w-]+)/messages:send$")
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
_RESERVED_DATA = {"from", "notification", "message_type"}
_FIELDS = {  # what the proto accepts (a subset of FCM's; anything else is an unknown name)
    "message": {"token", "topic", "condition", "name", "notification", "data", "android",
                "apns", "webpush", "fcm_options"},
    "notification": {"title", "body", "image"},
    "android": {"collapse_key", "priority", "ttl", "restricted_package_name", "data",
                "notification", "fcm_options", "direct_boot_ok"},
    "android.notification": {"title", "body", "icon", "color", "sound", "tag", "click_action",
                             "channel_id", "image", "notification_priority", "visibility"},
    "apns": {"headers", "payload", "fcm_options", "live_activity_token"},
}


class FakeFcm(FakeServer):
    def __init__(self, project_id: str = "parcel-hub-test") -> None:
        super().__init__()
        # 64 sender threads connect at once; the server's default backlog (5) would reset
        # some of them, which Google's front ends do not
        self.httpd.socket.listen(128)
        self.project_id = project_id
        self.client_email = f"hub-sender@{project_id}.iam.gserviceaccount.com"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self._flock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forgets tokens, messages and scripts (one fake shared by a module's tests)."""
        self.faults.clear()
        self.expires_in = 3600
        self.issued: dict[str, float] = {}  # access token → expiry (monotonic)
        self.token_requests = 0
        self.messages: list[dict[str, Any]] = []  # accepted: {"body", "headers", "name"}
        self.rejections: list[str] = []
        self.unregistered: set[str] = set()
        self.malformed: set[str] = set()  # tokens FCM answers INVALID_ARGUMENT on message.token
        self.scripted: dict[str, Fault] = {}  # registration token → what to answer instead

    def service_account_info(self, key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
        """The service-account JSON; another `key` makes one Google will refuse."""
        pem = (key or self.key).private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": self.project_id,
                "private_key_id": self.key_id, "private_key": pem,
                "client_email": self.client_email, "client_id": "1234567890",
                "token_uri": f"{self.url}/token"}

    def revoke_tokens(self) -> None:
        """Every issued access token now gets 401 (as after a key rotation)."""
        with self._flock:
            self.issued.clear()

    def handle(self, req: Request) -> Reply:
        if req.method == "POST" and req.path == "/token":
            return self._token(req)
        match = _SEND.match(req.path)
        if req.method != "POST" or not match or match.group(1) != self.project_id:
            return _error(404, "NOT_FOUND", "Requested entity was not found.")
        bearer = req.headers.get("authorization", "").removeprefix("Bearer ")
        with self._flock:
            valid = self.issued.get(bearer, 0.0) > time.monotonic()
        if not valid:
            return self._reject(_error(401, "UNAUTHENTICATED",
                                       "Request had invalid authentication credentials."))
        try:
            body = req.json()
        except ValueError:
            return self._reject(_error(400, "INVALID_ARGUMENT", "Invalid JSON payload."))
        problem = _shape_problem(body)
        if problem:
            return self._reject(_error(400, "INVALID_ARGUMENT", problem))
        return self._deliver(body, req.headers)

    def _deliver(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        token = body["message"]["token"]
        fault = self.scripted.get(token)
        if fault is not None:
            time.sleep(fault.hang)
            if fault.status != 200:
                return self._reject(json_reply(fault.status, fault.body, **fault.headers))
        if token in self.unregistered:
            return self._reject(_error(404, "NOT_FOUND", "Requested entity was not found.",
                                       "UNREGISTERED"))
        if token in self.malformed:  # not a token FCM ever issued: the field is named
            body_ = _error_body(400, "INVALID_ARGUMENT", "The registration token is not a "
                                "valid FCM registration token", "INVALID_ARGUMENT")
            body_["error"]["details"].append({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.token",
                                     "description": "Invalid registration token"}]})
            return self._reject(json_reply(400, body_))
        name = f"projects/{self.project_id}/messages/0:{secrets.token_hex(8)}"
        with self._flock:
            self.messages.append({"body": body, "headers": headers, "name": name})
        return json_reply(200, {"name": name})

    def script(self, token: str, status: int, error_code: str = "",
               headers: dict[str, str] | None = None, hang: float = 0.0) -> None:
        """Answer sends to `token` with this FCM error after `hang` seconds (status 200:
        a slow success)."""
        status_name = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 500: "INTERNAL",
                       403: "PERMISSION_DENIED", 400: "INVALID_ARGUMENT"}.get(status, "UNKNOWN")
        body = _error_body(status, status_name, f"scripted {error_code}", error_code)
        self.scripted[token] = Fault(status, headers or {}, body, hang)

    def fault_reply(self, fault: Fault) -> Reply:
        body = fault.body or _error_body(fault.status, "UNAVAILABLE", "injected", "UNAVAILABLE")
        return json_reply(fault.status, body, **fault.headers)

    def _token(self, req: Request) -> Reply:
        with self._flock:
            self.token_requests += 1
        form = req.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return json_reply(400, {"error": "unsupported_grant_type"})
        try:
            header = jwt.get_unverified_header(form.get("assertion", ""))
            claims = jwt.decode(form.get("assertion", ""), self.key.public_key(),
                                algorithms=["RS256"], audience=GOOGLE_TOKEN_AUDIENCE,
                                issuer=self.client_email, options={"require": ["exp", "iat"]})
        except jwt.PyJWTError as exc:
            return json_reply(400, {"error": "invalid_grant", "error_description": str(exc)})
        if header.get("kid") != self.key_id or SCOPE not in str(claims.get("scope", "")).split():
            return json_reply(400, {"error": "invalid_scope"})
        access = "ya29." + secrets.token_urlsafe(32)
        with self._flock:
            self.issued[access] = time.monotonic() + self.expires_in
        return json_reply(200, {"access_token": access, "expires_in": self.expires_in,
                                "token_type": "Bearer"})

    def _reject(self, reply: Reply) -> Reply:
        with self._flock:
            self.rejections.append(reply[2].decode())
        return reply


def _error_body(status: int, status_name: str, message: str,
                error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name}
    if error_code:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": error_code}]
    return {"error": error}


def _error(status: int, status_name: str, message: str, error_code: str | None = None) -> Reply:
    return json_reply(status, _error_body(status, status_name, message, error_code))


def _unknown(obj: Any, kind: str) -> str | None:
    if not isinstance(obj, dict):
        return f"Invalid value at '{kind}': object expected"
    extra = set(obj) - _FIELDS[kind]
    if extra:
        return f"Invalid JSON payload received. Unknown name \"{sorted(extra)[0]}\" at '{kind}'"
    return None


def _shape_problem(body: Any) -> str | None:
    """What FCM would call INVALID_ARGUMENT in this body, if anything."""
    if not isinstance(body, dict) or set(body) != {"message"}:
        return "Invalid JSON payload received. 'message' expected"
    message = body["message"]
    problem = _unknown(message, "message")
    if problem:
        return problem
    if sum(k in message for k in ("token", "topic", "condition")) != 1 or not message.get("token"):
        return "The registration token is not a valid FCM registration token"
    notification = message.get("notification", {})
    problem = _unknown(notification, "notification")
    if problem or any(not isinstance(v, str) for v in notification.values()):
        return problem or "Invalid value at 'message.notification': strings expected"
    data = message.get("data", {})
    if not isinstance(data, dict) or any(not isinstance(v, str) for v in data.values()):
        return "Invalid value at 'message.data[0].value' (TYPE_STRING)"
    if any(k in _RESERVED_DATA or k.startswith(("google", "gcm")) for k in data):
        return "Invalid data key: reserved by FCM"
    android = message.get("android", {})
    problem = _unknown(android, "android") or _unknown(android.get("notification", {}),
                                                       "android.notification")
    if problem:
        return problem
    if android.get("priority", "NORMAL") not in ("NORMAL", "HIGH"):
        return "Invalid value at 'message.android.priority'"
    ttl = android.get("ttl", "0s")
    if not isinstance(ttl, str) or not _TTL.match(ttl) or float(ttl[:-1]) > 28 * 86400:
        return "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)"
    apns = message.get("apns", {})
    problem = _unknown(apns, "apns")
    if problem:
        return problem
    headers = apns.get("headers", {})
    if not isinstance(headers, dict) or any(not isinstance(v, str) for v in headers.values()):
        return "Invalid value at 'message.apns.headers[0].value' (TYPE_STRING)"
    if not isinstance(apns.get("payload", {}).get("aps", {}), dict):
        return "Invalid APNs payload: aps must be an object"
    size = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    if size > 4096:
        return "Message is too big"
    return None
