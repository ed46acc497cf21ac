"""A Web Push service (RFC 8030): checks the VAPID JWT (RFC 8292) and decrypts each
aes128gcm payload (RFC 8291) with the subscriber's keys, as a browser would."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes.base import FakeServer, Reply, Request


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Subscriber:
    """A browser's side of one subscription: its ECDH key and auth secret."""

    sid: str
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    server_key: str | None
    gone: bool = False


@dataclass
class Delivered:
    sid: str
    payload: dict[str, Any]
    headers: dict[str, str]


class FakePushService(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.subscribers: dict[str, Subscriber] = {}
        self.delivered: list[Delivered] = []
        self.by_key: Counter[str] = Counter()
        self.rejections: list[str] = []
        self._plock = threading.Lock()

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """What PushManager.subscribe() gives a page: endpoint and keys."""
        sid = secrets.token_hex(8)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self.subscribers[sid] = Subscriber(sid, key, auth, application_server_key)
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.url}/push/{sid}",
            "keys": {"p256dh": b64e(point), "auth": b64e(auth)},
        }

    def unsubscribe(self, subscription: dict[str, Any]) -> None:
        self.subscribers[subscription["endpoint"].rsplit("/", 1)[1]].gone = True

    def _reject(self, status: int, why: str) -> Reply:
        with self._plock:
            self.rejections.append(why)
        return status, {"Content-Type": "text/plain"}, why.encode()

    def handle(self, req: Request) -> Reply:
        sid = req.path.rsplit("/", 1)[-1]
        sub = self.subscribers.get(sid)
        if req.method != "POST" or not req.path.startswith("/push/") or sub is None:
            return self._reject(404, "no such subscription")
        if sub.gone:
            return self._reject(410, "subscription expired")
        why = self._check_vapid(req.headers.get("authorization", ""), sub)
        if why:
            return self._reject(401 if why != "wrong key" else 403, why)
        if "ttl" not in req.headers:
            return self._reject(400, "TTL header missing")
        if req.headers.get("content-encoding") != "aes128gcm":
            return self._reject(415, "aes128gcm expected")
        try:
            clear = http_ece.decrypt(
                req.body, private_key=sub.key, auth_secret=sub.auth, version="aes128gcm"
            )
            payload = json.loads(clear.decode("utf-8"))
        except Exception as exc:
            return self._reject(400, f"cannot decrypt: {exc}")
        with self._plock:
            self.delivered.append(Delivered(sid, payload, req.headers))
            self.by_key[payload.get("id", sid)] += 1
        location = f"{self.url}/message/{secrets.token_hex(8)}"
        return 201, {"Location": location}, b""

    def _check_vapid(self, header: str, sub: Subscriber) -> str | None:
        if not header.lower().startswith("vapid "):
            return "no VAPID authorization"
        fields = dict(p.strip().split("=", 1) for p in header[6:].split(",") if "=" in p)
        token, key = fields.get("t", ""), fields.get("k", "")
        if sub.server_key and key != sub.server_key:
            return "wrong key"
        try:
            head, claims, sig = token.split(".")
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(key))
            raw = b64d(sig)
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
            body = json.loads(b64d(claims))
        except (ValueError, InvalidSignature) as exc:
            return f"bad VAPID token: {type(exc).__name__}"
        if json.loads(b64d(head)).get("alg") != "ES256":
            return "alg must be ES256"
        if body.get("aud") != self.url:
            return f"aud {body.get('aud')!r} is not {self.url!r}"
        if not (time.time() < body.get("exp", 0) <= time.time() + 24 * 3600):
            return "exp out of range"
        if not str(body.get("sub", "")).startswith(("mailto:", "https://")):
            return "sub missing"
        return None
