"""Loopback HTTP servers that speak providers' wire formats, with scriptable failures."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    """One scripted failure: an HTTP status (with headers/body) or a hang past the timeout."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    hang: float = 0.0


class Faults:
    """What the fake should do instead of succeeding: the next N requests, or for a period."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: list[Fault] = []
        self._until = 0.0
        self._window: Fault | None = None
        self.injected = 0

    def next(self, count: int = 1, **fault: Any) -> None:
        with self._lock:
            self._next.extend(Fault(**fault) for _ in range(count))

    def for_seconds(self, seconds: float, **fault: Any) -> None:
        with self._lock:
            self._window, self._until = Fault(**fault), time.monotonic() + seconds

    def clear(self) -> None:
        with self._lock:
            self._next.clear()
            self._window, self._until = None, 0.0

    def take(self) -> Fault | None:
        with self._lock:
            if self._next:
                self.injected += 1
                return self._next.pop(0)
            if self._window is not None and time.monotonic() < self._until:
                self.injected += 1
                return self._window
            return None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Reply = tuple[int, dict[str, str], bytes]
Route = Callable[[Request], Reply]


class _Listener(ThreadingHTTPServer):
    # A provider's front door takes many connections at once; the standard library's backlog
    # of 5 drops connects when 64 sends start together on a loaded machine.
    request_queue_size = 256


class FakeServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 and a free port; `handle` is per fake.

    `latency` (seconds, default from FAKE_PROVIDER_LATENCY_MS, else 0) delays every answer,
    like a provider's round trip; requests wait in parallel, each on its own thread.
    """

    def __init__(self, latency: float | None = None) -> None:
        self.faults = Faults()
        self.requests = 0
        self.latency = (float(os.environ.get("FAKE_PROVIDER_LATENCY_MS") or 0) / 1000
                        if latency is None else latency)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, *_: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with fake._lock:
                    fake.requests += 1
                if fake.latency > 0:
                    time.sleep(fake.latency)
                fault = fake.faults.take()
                if fault is not None and fault.hang:
                    time.sleep(fault.hang)
                if fault is not None:
                    status, headers, out = fake.fault_reply(fault)
                else:
                    status, headers, out = fake.handle(req)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.httpd = _Listener(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError

    def fault_reply(self, fault: Fault) -> Reply:
        body = (
            fault.body if fault.body is not None else {"error": "injected", "status": fault.status}
        )
        return (
            fault.status,
            {"Content-Type": "application/json", **fault.headers},
            json.dumps(body).encode(),
        )

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()
