"""Builders for test data and a runtime wired to a temporary store."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hub.keys import Scope, create_key
from hub.runtime import HubRuntime
from hub.settings import Settings


def make_runtime(database_url: str, tmp_path: Path, **overrides: Any) -> HubRuntime:
    """A runtime on the given store whose console channel writes under tmp_path.

    Throttling is off unless a test asks for it (throttle_backend="sql" or "redis"), so
    that tests of other stages do not depend on the time of day (quiet hours) or caps.
    """
    overrides.setdefault("throttle_backend", "off")
    settings = Settings(
        database_url=database_url,
        console_outbox_path=str(tmp_path / "outbox.jsonl"),
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
        **overrides,
    )
    return HubRuntime.build(settings)


def api_key(runtime: HubRuntime, *scopes: Scope, producer: str = "test-carrier") -> str:
    return create_key(runtime.db, producer, list(scopes) or [Scope.ADMIN])


def event(event_id: str = "evt-1", type_: str = "parcel.ready_for_pickup", **over: Any) -> dict[str, Any]:
    """A valid event in the wire shape, with overrides."""
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": type_,
        "occurred_at": "2026-11-25T14:20:00+01:00",
        "customer": {"id": "c-1001", "name": "Anna Kowalska", "phone": "+48512345678",
                     "email": "anna.kowalska@example.pl", "locale": "pl"},
        "parcel": {"tracking_number": "PL0001234567", "carrier": "demo-carrier",
                   "links": {"track": "https://track.example.pl/PL0001234567"},
                   "pickup_point": {"id": "WAW123M", "name": "Paczkomat WAW123M",
                                    "code": "482913",
                                    "deadline": "2026-11-26T19:40:00+01:00"}},
        "data": {},
    }
    body.update(over)
    return body


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """Messages the console channel wrote."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers the tests and benchmarks start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(runtime: HubRuntime, port: int, app: Any = None) -> Iterator[str]:
    """The hub's HTTP API for `runtime` (or the given app of it) on 127.0.0.1:`port` in a
    thread (browser and live-stream tests); yields its base URL and stops the server
    afterwards."""
    import uvicorn

    from hub.api.app import create_app

    server = uvicorn.Server(uvicorn.Config(app or create_app(runtime), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
