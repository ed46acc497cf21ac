"""Twilio's Messages REST resource: form-encoded, basic auth, JSON answers and error bodies.

Also signs status and inbound webhooks the way Twilio does (X-Twilio-Signature:
base64 HMAC-SHA1 over the URL followed by the sorted POST parameters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.base import FakeServer, Reply, Request, json_reply

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_PATH = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages\.json$")


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """What Twilio puts in X-Twilio-Signature."""
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


class FakeTwilio(FakeServer):
    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "fake-token") -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict[str, Any]] = []
        self.by_key: Counter[str] = Counter()
        self.invalid: set[str] = set()
        self.stopped: set[str] = set()
        self._mlock = threading.Lock()

    def handle(self, req: Request) -> Reply:
        match = _PATH.match(req.path)
        if req.method != "POST" or not match:
            return self._error(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if (
            req.headers.get("authorization") != f"Basic {expected}"
            or match.group(1) != self.account_sid
        ):
            return self._error(401, 20003, "Authenticate")
        if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._error(400, 20001, "form encoding expected")
        form = req.form()
        to = form.get("To", "")
        if not E164.match(to) or to in self.invalid:
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.stopped:
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(400, 21603, "A 'From' or 'MessagingServiceSid' is required")
        sid = "SM" + secrets.token_hex(16)
        record = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body", ""),
            "status": "queued",
            "status_callback": form.get("StatusCallback"),
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        key = (parse_qs(urlsplit(form.get("StatusCallback") or "").query).get("key") or [""])[0]
        with self._mlock:
            self.messages.append(record)
            self.by_key[key or sid] += 1
        return json_reply(201, record)

    def _error(self, status: int, code: int, message: str) -> Reply:
        return json_reply(
            status,
            {
                "code": code,
                "message": message,
                "status": status,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
            },
        )

    def fault_reply(self, fault: Any) -> Reply:
        code = 20429 if fault.status == 429 else 20500
        body = fault.body or {"code": code, "message": "injected failure", "status": fault.status}
        return json_reply(fault.status, body, **fault.headers)

    def signed(
        self,
        url: str,
        params: dict[str, str],
        token: str | None = None,
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """A webhook as Twilio would POST it: (url, form params, headers)."""
        signature = twilio_signature(token or self.auth_token, url, params)
        return url, params, {"X-Twilio-Signature": signature}

    def status_webhook(
        self,
        message: dict[str, Any],
        status: str,
        error_code: str | None = None,
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        params = {
            "MessageSid": message["sid"],
            "SmsSid": message["sid"],
            "AccountSid": self.account_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message["to"],
            "From": message["from"] or "",
            "ApiVersion": "2010-04-01",
        }
        if error_code:
            params["ErrorCode"] = error_code
        return self.signed(message["status_callback"], params)

    def inbound_webhook(
        self,
        url: str,
        from_: str,
        body: str,
        to: str = "+48500000000",
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "ApiVersion": "2010-04-01",
        }
        return self.signed(url, params)
