"""E-mail through an SMTP relay (smtplib): multipart/alternative, STARTTLS and AUTH.

Configured by one URL: `smtp://user:pass@host:587?starttls=true` (STARTTLS, the default
for port 587), `smtps://user:pass@host:465` (implicit TLS), `smtp://host:25` (plain).
Crash reconciliation: SMTP has no way to ask a relay what it accepted, so `reconcile`
returns None (the hub marks the send unconfirmed instead of sending twice). The Message-ID
is derived from the idempotency key, so a relay or mailbox that de-duplicates by
Message-ID also drops a resend.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from channels.base import OutgoingMessage, SendResult
from channels.errors import DEAD_ADDRESS, PERMANENT, TRANSIENT, ConfigurationError, ErrorTable
from channels.mail_headers import list_unsubscribe_headers

# SMTP reply codes (RFC 5321 / 3463): 4xx may pass later, 5xx never; unknown mailbox is dead.
ERRORS = ErrorTable({
    421: TRANSIENT, 450: TRANSIENT, 451: TRANSIENT, 452: TRANSIENT, 454: TRANSIENT,
    535: TRANSIENT,  # authentication failed: an operator must fix the credentials
    550: DEAD_ADDRESS, 551: DEAD_ADDRESS, 553: DEAD_ADDRESS,  # no such mailbox / bad address
    552: PERMANENT, 554: PERMANENT, 555: PERMANENT, 501: PERMANENT,
})


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to connect, parsed from the HUB_SMTP_URL."""

    host: str
    port: int
    tls: str  # "starttls", "implicit" or "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, timeout: float = 10.0) -> SmtpSettings:
        """Parses smtp:// or smtps:// URLs; the error names the bad part."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigurationError("smtp: HUB_SMTP_URL must be smtp://host[:port] or smtps://")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
        if parts.scheme == "smtps":
            tls = "implicit"
        elif "starttls" in query:
            tls = "starttls" if query["starttls"] in ("1", "true", "yes") else "none"
        else:
            tls = "starttls" if port == 587 else "none"
        return cls(parts.hostname, port, tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None, timeout)


class SmtpEmailAdapter:
    """Sends text (and HTML, when rendered) as multipart/alternative through one relay."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings, sender: str,
                 tls_context: ssl.SSLContext | None = None) -> None:
        if not parseaddr(sender)[1]:
            raise ConfigurationError("smtp: HUB_EMAIL_FROM is not an e-mail address")
        self.settings = settings
        self.sender = sender
        self.tls_context = tls_context or ssl.create_default_context()

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """The MIME message: headers, text part, optional HTML alternative."""
        parts = message.parts
        mail = EmailMessage()
        name, addr = parseaddr(self.sender)
        mail["From"] = formataddr((name, addr))
        mail["To"] = message.address
        mail["Subject"] = parts.get("subject", "")
        digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
        mail["Message-ID"] = f"<{digest}@{addr.rsplit('@', 1)[-1]}>"
        mail["X-Hub-Notification"] = message.idempotency_key
        if message.metadata.get("event_type"):
            mail["X-Hub-Category"] = str(message.metadata["event_type"])
        for key, value in list_unsubscribe_headers(message.metadata).items():
            mail[key] = value
        mail.set_content(parts.get("text") or parts.get("body", ""))
        if parts.get("html"):
            mail.add_alternative(parts["html"], subtype="html")
        return mail

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.tls == "implicit":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                  context=self.tls_context)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.tls == "starttls":
                conn.starttls(context=self.tls_context)
        if s.username:
            conn.login(s.username, s.password or "")
        return conn

    def send(self, message: OutgoingMessage) -> SendResult:
        """One SMTP transaction; reply codes are classified by ERRORS."""
        mail = self.build(message)
        try:
            with self._connect() as conn:
                refused = conn.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return ERRORS.result(code, None, f"smtp {code}: {_text(text)}")
        except smtplib.SMTPResponseException as exc:
            detail = f"smtp {exc.smtp_code}: {_text(exc.smtp_error)}"
            return ERRORS.result(exc.smtp_code, None, detail)
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult.transient(f"smtp unreachable: {type(exc).__name__}: {exc}")
        if refused:
            code, text = next(iter(refused.values()))
            return ERRORS.result(code, None, f"smtp {code}: {_text(text)}")
        return SendResult.sent(str(mail["Message-ID"]))

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        """SMTP cannot be asked what it accepted (module doc)."""
        return None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
