"""An SMTP relay (aiosmtpd) with STARTTLS (self-signed cert) and AUTH PLAIN/LOGIN."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import threading
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import free_port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path



class _Handler:
    def __init__(self, relay: FakeSmtpRelay) -> None:
        self.relay = relay

    async def handle_RCPT(
        self,
        server: Any,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.relay.unknown:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        with self.relay.lock:
            if self.relay.fail_next:
                self.relay.fail_next -= 1
                return "451 4.3.0 Temporary local problem, try later"
        message = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        with self.relay.lock:
            self.relay.messages.append((envelope, message, session))
            self.relay.by_key[str(message["X-Hub-Notification"])] += 1
        return "250 2.0.0 Queued"


class FakeSmtpRelay:
    """Accepts mail only over STARTTLS and after AUTH with the given credentials."""

    def __init__(self, tmp: Path, username: str = "hub", password: str = "s3cret") -> None:
        self.username, self.password = username, password
        self.messages: list[tuple[Envelope, EmailMessage, Session]] = []
        self.by_key: Counter[str] = Counter()
        self.unknown: set[str] = set()
        self.fail_next = 0
        self.lock = threading.Lock()
        self.cert, key = self_signed(tmp)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(self.cert, key)
        self.port = free_port()
        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=server_ctx,
            require_starttls=True,
            authenticator=self._auth,
            auth_require_tls=True,
        )

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this relay's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def _auth(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.username,
            self.password,
        )
        return AuthResult(success=ok, handled=False)

    def url(self) -> str:
        return f"smtp://{self.username}:{self.password}@127.0.0.1:{self.port}?starttls=true"

    def start(self) -> FakeSmtpRelay:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
