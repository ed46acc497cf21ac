"""The Apple Push Notification service's provider API over real HTTP/2 (the `h2` library).

TLS with ALPN `h2` only, like APNs, on loopback with a throwaway certificate (`cert`: point
SSL_CERT_FILE at it so the adapter's client trusts it). Each connection gets a reader
thread; each request stream is answered on its own thread, so a slow answer does not hold
the others (as on APNs).

Checks as APNs does: the provider JWT (ES256 signature against the team's public key,
`kid`, `iss`, `iat` not older than an hour), the :path, method and apns-* headers, the
payload size; answers 200 with `apns-id`, or `{"reason": ...}` (410 adds a timestamp).
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.smtp import self_signed

_PATH = re.compile(r"^/3/device/([0-9a-fA-F]{64,200})$")
_PUSH_TYPES = {"alert", "background", "location", "voip", "complication", "fileprovider",
               "mdm", "liveactivity", "pushtotalk"}


@dataclass
class Pushed:
    token: str
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class Scripted:
    """What to answer a device token with (status 200: success, after `delay` seconds)."""

    status: int
    reason: str | None = None
    headers: dict[str, str] | None = None
    delay: float = 0.0


class FakeApns:
    def __init__(self, directory: Path, team_id: str = "TEAM123456", key_id: str = "KEY1234567",
                 topics: tuple[str, ...] = ("pl.parcelhub.app",)) -> None:
        self.team_id, self.key_id, self.topics = team_id, key_id, set(topics)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pushed: list[Pushed] = []
        self.rejections: list[str] = []
        self.provider_tokens: set[str] = set()  # every JWT seen
        self.expired_tokens: set[str] = set()
        self.unregistered: set[str] = set()
        self.scripted: dict[str, Scripted] = {}
        self.connections = 0
        self._lock = threading.Lock()
        self.cert, key = self_signed(directory)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(self.cert, key)
        self.tls.set_alpn_protocols(["h2"])
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._open: list[ssl.SSLSocket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def p8(self) -> bytes:
        """The team's signing key as Apple hands it out (PKCS#8 PEM, the .p8 file)."""
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def expire_seen_tokens(self) -> None:
        """Every provider token used so far now gets 403 ExpiredProviderToken."""
        with self._lock:
            self.expired_tokens |= self.provider_tokens

    def start(self) -> FakeApns:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._sock.close()
        for conn in list(self._open):
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> FakeApns:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self.tls.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        if tls.selected_alpn_protocol() != "h2":
            tls.close()  # APNs speaks HTTP/2 only
            return
        with self._lock:
            self.connections += 1
            self._open.append(tls)
        _Connection(self, tls).run()

    def answer(self, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body APNs would give this request."""
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        status, reason = self._check(path, headers, body)
        scripted = None if status else self.scripted.get(path.rsplit("/", 1)[-1])
        if scripted is not None:
            time.sleep(scripted.delay)
            if scripted.status != 200:
                status, reason = scripted.status, scripted.reason
        if not status:
            with self._lock:
                self.pushed.append(Pushed(path.rsplit("/", 1)[-1], headers, json.loads(body)))
            return 200, {"apns-id": apns_id}, b""
        answer: dict[str, Any] = {"reason": reason}
        if status == 410:
            answer["timestamp"] = int(time.time() * 1000)
        with self._lock:
            self.rejections.append(str(reason))
        extra = scripted.headers if scripted and scripted.headers else {}
        return status, {"apns-id": apns_id, "content-type": "application/json", **extra}, \
            json.dumps(answer).encode()

    def _check(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str | None]:
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed"
        match = _PATH.match(path)
        if not match:
            return (400, "BadDeviceToken") if path.startswith("/3/device/") else (404, "BadPath")
        problem = self._check_jwt(headers.get("authorization", ""))
        if problem:
            return 403, problem
        if not headers.get("apns-topic"):
            return 400, "MissingTopic"
        if headers["apns-topic"] not in self.topics:
            return 400, "DeviceTokenNotForTopic"
        if headers.get("apns-push-type", "alert") not in _PUSH_TYPES:
            return 400, "InvalidPushType"
        if headers.get("apns-priority", "10") not in ("5", "10", "1"):
            return 400, "BadPriority"
        if not headers.get("apns-expiration", "0").isdigit():
            return 400, "BadExpirationDate"
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return 400, "BadCollapseId"
        try:
            uuid.UUID(headers.get("apns-id") or str(uuid.uuid4()))
        except ValueError:
            return 400, "BadMessageId"
        if not body:
            return 400, "PayloadEmpty"
        if len(body) > 4096:
            return 413, "PayloadTooLarge"
        if match.group(1) in self.unregistered:
            return 410, "Unregistered"
        return 0, None

    def _check_jwt(self, authorization: str) -> str | None:
        if not authorization.lower().startswith("bearer "):
            return "MissingProviderToken"
        token = authorization[7:]
        with self._lock:
            self.provider_tokens.add(token)
            if token in self.expired_tokens:
                return "ExpiredProviderToken"
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.key.public_key(), algorithms=["ES256"],
                                options={"require": ["iss", "iat"], "verify_iat": True})
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return "InvalidProviderToken"
        if time.time() - float(claims["iat"]) > 3600:
            return "ExpiredProviderToken"
        return None


class _Connection:
    """One client connection: the reader loop, and one responder thread per stream."""

    def __init__(self, fake: FakeApns, sock: ssl.SSLSocket) -> None:
        self.fake, self.sock = fake, sock
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.lock = threading.Lock()  # the h2 state machine and the socket's writes
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}

    def run(self) -> None:
        try:
            with self.lock:
                self.h2.initiate_connection()
                self.sock.sendall(self.h2.data_to_send())
            while self._read():
                pass
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.sock.close()

    def _read(self) -> bool:
        """One read, under the lock that the responders write under: one TLS object must not
        be read and written by two threads at once. Waits outside the lock."""
        if not self.sock.pending():
            select.select([self.sock], [], [], 0.5)
        with self.lock:
            self.sock.settimeout(0.01)
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, ssl.SSLWantReadError):
                return True  # nothing yet (or half a TLS record)
            finally:
                self.sock.settimeout(None)
            if not data:
                return False
            for event in self.h2.receive_data(data):
                self._on(event)
            self.sock.sendall(self.h2.data_to_send())
        return True

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.streams[event.stream_id] = (
                {str(k): str(v) for k, v in event.headers or []}, bytearray())
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id][1].extend(event.data or b"")
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            headers, body = self.streams.pop(event.stream_id)
            threading.Thread(target=self._respond, args=(event.stream_id, headers, bytes(body)),
                             daemon=True).start()
        elif isinstance(event, h2.events.StreamReset):
            self.streams.pop(event.stream_id, None)

    def _respond(self, stream_id: int, headers: dict[str, str], body: bytes) -> None:
        status, out_headers, out = self.fake.answer(headers.get(":path", ""), headers, body)
        with self.lock:
            try:
                self.h2.send_headers(stream_id, [(":status", str(status)),
                                                 *out_headers.items()], end_stream=not out)
                if out:
                    self.h2.send_data(stream_id, out, end_stream=True)
                self.sock.sendall(self.h2.data_to_send())
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, OSError):
                pass  # the client gave up on this stream (timeout tests) or the connection
