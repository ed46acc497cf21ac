"""SMS through Twilio's Messages resource, with the official `twilio` SDK.

Crash reconciliation: Twilio's Messages resource takes no client reference or idempotency
key, so `reconcile` cannot ask Twilio and returns None. Instead the status callback URL
carries the idempotency key (`?key=...`), so Twilio's first status callback for a message
sent just before a crash finds its send record; the hub's receipt handler settles it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.base import OutgoingMessage, SendResult
from channels.errors import (
    DEAD_ADDRESS,
    OPTED_OUT,
    PERMANENT,
    TRANSIENT,
    ConfigurationError,
    ErrorTable,
    parse_retry_after,
)

TWILIO_API = "https://api.twilio.com"

# Twilio error codes (https://www.twilio.com/docs/api/errors) and HTTP statuses, in one table.
ERRORS = ErrorTable({
    21211: DEAD_ADDRESS,  # invalid 'To' phone number
    21214: DEAD_ADDRESS,  # 'To' number cannot be reached
    21610: OPTED_OUT,     # recipient replied STOP: unsubscribed (a consent withdrawal)
    21614: DEAD_ADDRESS,  # 'To' is not a mobile number
    21612: PERMANENT,     # this 'To'/'From' combination cannot be routed
    21408: PERMANENT,     # sending to this region is not enabled
    21617: PERMANENT,     # body exceeds the 1600 character limit
    30007: PERMANENT,     # carrier filtered the message as spam
    20429: TRANSIENT,     # too many requests
    20003: TRANSIENT,     # authentication failed: an operator must fix the credentials
    401: TRANSIENT,
    429: TRANSIENT,
})


class HeaderKeepingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The SDK's HTTP client, remembering each thread's last response headers
    (TwilioRestException does not carry headers; the adapter needs `Retry-After`), and
    sized for the engine's concurrent calls.

    The SDK keeps at most `min(32, cores + 4)` connections to Twilio: with 64 calls in
    flight the rest opened (and TLS-handshook) a new connection per message. And requests
    reads the proxy settings from the environment on every request (about a millisecond of
    CPU each); they are read once here, for the one host this client talks to.
    """

    def __init__(self, timeout: float = 10.0, base_url: str = TWILIO_API,
                 connections: int = 64) -> None:
        super().__init__(timeout=timeout, proxy=requests.utils.get_environ_proxies(base_url))
        session = self.session
        session.trust_env = False  # read once above; CA bundle below
        session.verify = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                          or True)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, connections))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Response:  # noqa: D102
        self._local.headers = {}
        response = super().request(*args, **kwargs)
        self._local.headers = dict(response.headers or {})
        return response

    @property
    def last_headers(self) -> Mapping[str, str]:
        """Headers of this thread's last response."""
        return getattr(self._local, "headers", {})


def make_client(
    account_sid: str, auth_token: str, base_url: str | None = None, timeout: float = 10.0,
    connections: int = 64,
) -> Client:
    """A Twilio client; `base_url` replaces https://api.twilio.com (loopback fakes);
    `connections`: as many as calls in flight (HUB_SEND_CONCURRENCY)."""
    if not account_sid or not auth_token:
        raise ConfigurationError("twilio: HUB_TWILIO_ACCOUNT_SID and HUB_TWILIO_AUTH_TOKEN")
    client = Client(account_sid, auth_token, http_client=HeaderKeepingHttpClient(
        timeout, base_url or TWILIO_API, connections))
    if base_url:
        client.api.base_url = base_url.rstrip("/")
    return client


class TwilioSmsAdapter:
    """Sends `parts["body"]` to an E.164 number from a number, sender id or messaging service."""

    name = "twilio"

    def __init__(self, client: Client, sender: str, status_callback: str | None = None) -> None:
        if not sender:
            raise ConfigurationError("twilio: HUB_TWILIO_FROM (number, sender id or MG... sid)")
        self.client = client
        self.sender = sender
        self.status_callback = status_callback

    def send(self, message: OutgoingMessage) -> SendResult:
        """Creates the Message; Twilio errors are classified by ERRORS."""
        kwargs: dict[str, Any] = {"to": message.address, "body": message.parts["body"]}
        if self.sender.startswith("MG"):
            kwargs["messaging_service_sid"] = self.sender
        else:
            kwargs["from_"] = self.sender
        if self.status_callback:
            kwargs["status_callback"] = (
                f"{self.status_callback}?{urlencode({'key': message.idempotency_key})}"
            )
        try:
            created = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            return ERRORS.result(exc.status, exc.code, f"twilio {exc.status} {exc.code}: "
                                 f"{exc.msg}", self._retry_after())
        except (requests.RequestException, TwilioException) as exc:
            return SendResult.transient(f"twilio unreachable: {type(exc).__name__}")
        return SendResult.sent(str(created.sid))

    def _retry_after(self) -> float | None:
        headers = getattr(self.client.http_client, "last_headers", {})
        lowered = {k.lower(): v for k, v in headers.items()}
        return parse_retry_after(lowered.get("retry-after"))

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """Twilio cannot be asked by our key; the status callback settles it (module doc)."""
        return None
