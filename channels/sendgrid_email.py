"""E-mail through SendGrid's v3 Mail Send API, with the official `sendgrid` SDK.

Crash reconciliation: every message carries the idempotency key in `custom_args`; the
Email Activity API (`GET /v3/messages`, a SendGrid add-on) can be queried by it. Its data
lags a few seconds behind a send, so a key not found yet is reported unknown (None) and the
hub records the send as unconfirmed rather than risk a duplicate.
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Category,
    Content,
    CustomArg,
    From,
    Header,
    Mail,
    MimeType,
    Subject,
    To,
)

from channels.base import OutgoingMessage, SendResult
from channels.errors import (
    PERMANENT,
    TRANSIENT,
    ConfigurationError,
    ErrorTable,
    parse_retry_after,
)
from channels.mail_headers import list_unsubscribe_headers

# HTTP statuses of /v3/mail/send (SendGrid reports bounces later, through the event webhook).
ERRORS = ErrorTable({
    400: PERMANENT,   # the request is malformed (e.g. invalid address)
    401: TRANSIENT,   # bad API key: an operator must fix it; do not burn the message
    403: TRANSIENT,   # sender identity not verified / key lacks mail.send
    413: PERMANENT,   # payload too large
    429: TRANSIENT,
})
KEY_ARG = "idempotency_key"


def make_client(api_key: str, host: str | None = None, timeout: float = 10.0) -> SendGridAPIClient:
    """A SendGrid client; `host` replaces https://api.sendgrid.com (loopback fakes)."""
    if not api_key:
        raise ConfigurationError("sendgrid: HUB_SENDGRID_API_KEY")
    client = SendGridAPIClient(api_key, host=host or "https://api.sendgrid.com")
    client.client.timeout = timeout
    return client


class SendGridEmailAdapter:
    """Sends subject/text/html parts with custom args, categories and RFC 8058 headers."""

    name = "sendgrid"

    def __init__(self, client: SendGridAPIClient, sender: str, timeout: float = 10.0) -> None:
        if not sender:
            raise ConfigurationError("sendgrid: HUB_EMAIL_FROM")
        self.client = client
        self.sender = sender
        self.timeout = timeout

    def build(self, message: OutgoingMessage) -> dict[str, Any]:
        """The Mail Send request body for a message."""
        parts, meta = message.parts, message.metadata
        mail = Mail(from_email=From(self.sender), to_emails=To(message.address),
                    subject=Subject(parts.get("subject", "")))
        mail.add_content(Content(MimeType.text, parts.get("text") or parts.get("body", "")))
        if parts.get("html"):
            mail.add_content(Content(MimeType.html, parts["html"]))
        mail.add_custom_arg(CustomArg(KEY_ARG, message.idempotency_key))
        for name in ("event_type", "tracking_number"):
            if meta.get(name):
                mail.add_custom_arg(CustomArg(name, str(meta[name])))
        for category in dict.fromkeys(filter(None, (meta.get("event_type"),
                                                    meta.get("category")))):
            mail.add_category(Category(str(category)))
        for key, value in list_unsubscribe_headers(meta).items():
            mail.add_header(Header(key, value))
        return dict(mail.get())

    def send(self, message: OutgoingMessage) -> SendResult:
        """Posts to /v3/mail/send; the answer's X-Message-Id is the provider id."""
        try:
            response = self.client.client.mail.send.post(
                request_body=self.build(message), timeout=self.timeout
            )
        except HTTPError as exc:
            headers = {k.lower(): v for k, v in dict(exc.headers or {}).items()}
            return ERRORS.result(exc.status_code, None,
                                 f"sendgrid {exc.status_code}: {_first_error(exc.body)}",
                                 parse_retry_after(headers.get("retry-after")))
        except (urllib.error.URLError, OSError) as exc:
            return SendResult.transient(f"sendgrid unreachable: {type(exc).__name__}")
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return SendResult.sent(str(message_id or f"sendgrid:{message.idempotency_key}"))

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """Asks the Email Activity API for a message carrying this key."""
        query = f"(unique_args['{KEY_ARG}']=\"{idempotency_key}\")"
        try:
            response = self.client.client.messages.get(
                query_params={"query": query, "limit": 1}, timeout=self.timeout
            )
            found = json.loads(response.body or b"{}").get("messages") or []
        except (HTTPError, urllib.error.URLError, OSError, ValueError):
            return None
        if not found:
            return None
        return SendResult.sent(str(found[0].get("msg_id", "")).split(".", 1)[0])


def _first_error(body: bytes | str | None) -> str:
    try:
        errors = json.loads(body or b"{}").get("errors") or []
        return str(errors[0].get("message", "")) if errors else ""
    except (ValueError, AttributeError):
        return ""
