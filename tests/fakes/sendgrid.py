"""SendGrid's /v3/mail/send (JSON, Bearer key, 202 + X-Message-Id), the Email Activity
query, and the signed Event Webhook (ECDSA P-256 over timestamp + payload)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.base import FakeServer, Reply, Request, json_reply

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class FakeSendGrid(FakeServer):
    def __init__(self, api_key: str = "SG.fake-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.mails: list[dict[str, Any]] = []
        self.by_key: Counter[str] = Counter()
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        self._mlock = threading.Lock()

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid shows it (base64 DER, no PEM armour)."""
        der = self._signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def handle(self, req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            return json_reply(
                401,
                {
                    "errors": [
                        {
                            "message": "The provided authorization grant "
                            "is invalid, expired, or revoked"
                        }
                    ]
                },
            )
        if req.method == "POST" and req.path == "/v3/mail/send":
            return self._send(req)
        if req.method == "GET" and req.path == "/v3/messages":
            return self._activity(req)
        return json_reply(404, {"errors": [{"message": "not found"}]})

    def _send(self, req: Request) -> Reply:
        body = req.json()
        try:
            to = body["personalizations"][0]["to"][0]["email"]
            assert body["from"]["email"] and body["content"]
        except (KeyError, IndexError, TypeError, AssertionError):
            return json_reply(400, {"errors": [{"message": "malformed request", "field": None}]})
        if "@" not in to:
            return json_reply(
                400,
                {
                    "errors": [
                        {
                            "message": "Does not contain a valid address.",
                            "field": "personalizations.0.to.0.email",
                        }
                    ]
                },
            )
        message_id = secrets.token_urlsafe(16)
        key = (body.get("custom_args") or {}).get("idempotency_key", message_id)
        with self._mlock:
            self.mails.append({"id": message_id, "body": body, "headers": req.headers})
            self.by_key[key] += 1
        return 202, {"X-Message-Id": message_id}, b""

    def _activity(self, req: Request) -> Reply:
        query = (req.query.get("query") or [""])[0]
        found = [
            m
            for m in self.mails
            if f'"{(m["body"].get("custom_args") or {}).get("idempotency_key")}"' in query
        ]
        return json_reply(
            200,
            {
                "messages": [
                    {"msg_id": f"{m['id']}.filter0001.1.0", "status": "processed"}
                    for m in found[:1]
                ]
            },
        )

    def event_webhook(
        self,
        events: list[dict[str, Any]],
        timestamp: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A signed Event Webhook POST: (body, headers)."""
        payload = json.dumps(events).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._signing_key.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return payload, {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        }

    def event(self, mail: dict[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
        """One event about a sent mail, carrying its custom args like SendGrid does."""
        body = mail["body"]
        return {
            "email": body["personalizations"][0]["to"][0]["email"],
            "event": kind,
            "timestamp": int(time.time()),
            "sg_event_id": secrets.token_urlsafe(12),
            "sg_message_id": f"{mail['id']}.filter0001.1.0",
            **(body.get("custom_args") or {}),
            **extra,
        }
