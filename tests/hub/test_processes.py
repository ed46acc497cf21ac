"""Real processes: two workers on one store, and `kill -9` of the server right after a 202."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.db import Database
from hub.events import EventIn
from hub.intake import accept
from hub.models import OutboxJob
from tests.helpers import event, free_port, read_outbox

pytestmark = pytest.mark.slow
ACCEPTED = 'hub_events_accepted_total{type="parcel.ready_for_pickup"}'


def _env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HUB_DATABASE_URL": database_url,
            "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
            "HUB_LOG_LEVEL": "WARNING", "HUB_WORKER_POLL_SECONDS": "0.05",
            "HUB_WORKER_BATCH": "5", **extra}


def _hub(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "hub", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _pending(db: Database) -> int:
    with db.sessions() as session:
        return session.query(OutboxJob).filter(OutboxJob.state != "done").count()


def test_two_worker_processes_never_send_a_row_twice(database_url: str, tmp_path: Path) -> None:
    from hub import migrate

    db = Database(database_url)
    migrate.upgrade(db)
    events = [EventIn.model_validate(event(f"evt-{i}", customer={
        "id": f"c-{i}", "phone": f"+485123{i:05d}"})) for i in range(200)]
    for start in range(0, 200, 50):
        accept(db, "test-carrier", events[start:start + 50])
    env = _env(database_url, tmp_path)
    workers = [_hub("worker", "--threads", "2", env=env) for _ in range(2)]
    try:
        deadline = time.monotonic() + 90
        while _pending(db) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0, w.stderr.read().decode() if w.stderr else ""
    assert _pending(db) == 0
    sent = read_outbox(tmp_path / "outbox.jsonl")
    counts = collections.Counter(m["id"] for m in sent)
    duplicates = {k: v for k, v in counts.items() if v > 1}
    print(f"accepted=200 sent={len(sent)} distinct={len(counts)} duplicates={len(duplicates)}")
    assert not duplicates
    assert len(counts) == 200
    db.dispose()



def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_kill_9_after_202_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    env = _env(url, tmp_path)
    made = subprocess.run([sys.executable, "-m", "hub", "keys", "create", "--producer", "p1",
                           "--scope", "events:write", "--scope", "events:read"],
                          env=env, capture_output=True, text=True, check=True)
    token = made.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # First life: the worker is off, so the event can only be processed after the restart.
    server = _hub("serve", "--port", str(port), "--no-worker", env=env)
    try:
        _wait_http(f"{base}/healthz")
        reply = httpx.post(f"{base}/v1/events", json=event("evt-crash"), headers=headers)
        assert reply.status_code == 202
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert read_outbox(tmp_path / "outbox.jsonl") == []
    server = _hub("serve", "--port", str(port), env=env)
    try:
        _wait_http(f"{base}/healthz")
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline:
            state = httpx.get(f"{base}/v1/events/evt-crash", headers=headers).json()["state"]
            if state == "processed":
                break
            time.sleep(0.1)
        assert state == "processed"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    sent = read_outbox(tmp_path / "outbox.jsonl")
    assert len(sent) == 1 and sent[0]["to"] == "+48512345678"


def test_metrics_add_up_across_api_processes(tmp_path: Path) -> None:
    """`hub serve --workers 2`: whichever process answers /metrics, it counts every event."""
    env = _env(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    token = subprocess.run([sys.executable, "-m", "hub", "keys", "create", "--producer", "p",
                            "--scope", "events:write"], env=env, capture_output=True, text=True,
                           check=True).stdout.split()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _hub("serve", "--port", str(port), "--workers", "2", "--no-worker", env=env)
    try:
        _wait_http(f"{base}/healthz")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            for i in range(12):  # new connections: spread over both processes
                reply = httpx.post(f"{base}/v1/events", json=event(f"evt-m{i}"),
                                   headers={"Authorization": f"Bearer {token}"})
                assert reply.status_code == 202
            for _ in range(4):
                text = http.get("/metrics").text
                line = next(row for row in text.splitlines()
                            if row.startswith(ACCEPTED))
                assert float(line.split()[-1]) == 12.0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
