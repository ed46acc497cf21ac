"""Broker and PostgreSQL restarts in the middle of a stream: nothing accepted is lost, nothing
is sent twice, and the processes recover on their own."""

from __future__ import annotations

import collections
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_BASE, fresh_pg_url, need_service, service_up
from tests.helpers import event, free_port, read_outbox
from tests.hub.test_processes import _wait_http

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]
EVENTS = 150


def _pg_cluster() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "stop"], check=False, capture_output=True, timeout=120)
    subprocess.run(["rabbitmq-server", "-detached"], check=True, capture_output=True)
    _wait_port(5672)


def restart_postgres() -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _pg_cluster(), "main", "restart"],
                   check=True, capture_output=True, timeout=120)
    _wait_port(5432)


def _wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not service_up("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise AssertionError(f"port {port} did not come back")
        time.sleep(0.5)


def _produce(base: str, headers: dict[str, str], accepted: list[str], stop_after: int) -> None:
    """A producer that retries until each event is accepted (as a real one would)."""
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        for n in range(stop_after):
            body = event(f"evt-{n}", customer={"id": f"c-{n}", "phone": f"+4851240{n:04d}"})
            while True:
                try:
                    reply = http.post("/v1/events", json=body)
                    if reply.status_code in (200, 202):
                        accepted.append(body["event_id"])
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            time.sleep(0.04)


@pytest.mark.parametrize("restart", [restart_rabbitmq, restart_postgres],
                         ids=["rabbitmq", "postgresql"])
def test_restart_mid_stream(restart: object, tmp_path: Path) -> None:
    need_service("PostgreSQL", 5432)
    need_service("RabbitMQ", 5672)
    env = {**os.environ, "HUB_DATABASE_URL": fresh_pg_url(PG_BASE),
           "HUB_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",
           "HUB_BROKER_QUEUE": f"hub-fault-{secrets.token_hex(4)}",
           "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
           "HUB_LOG_LEVEL": "ERROR", "HUB_WORKER_POLL_SECONDS": "0.1",
           "HUB_WORKER_LEASE_SECONDS": "5"}
    subprocess.run([sys.executable, "-m", "hub", "migrate"], env=env, check=True, capture_output=True)
    token = subprocess.run(
        [sys.executable, "-m", "hub", "keys", "create", "--producer", "p", "--scope", "admin"],
        env=env, check=True, capture_output=True, text=True).stdout.split()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port)], env=env,
                              stderr=subprocess.DEVNULL),
             subprocess.Popen([sys.executable, "-m", "hub", "worker", "--threads", "2"], env=env,
                              stderr=subprocess.DEVNULL)]
    accepted: list[str] = []
    try:
        _wait_http(f"{base}/healthz")
        producer = threading.Thread(target=_produce, args=(
            base, {"Authorization": f"Bearer {token}"}, accepted, EVENTS))
        producer.start()
        while len(accepted) < EVENTS // 3:
            time.sleep(0.1)
        restart()  # type: ignore[operator]
        producer.join(timeout=300)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len({m["id"] for m in read_outbox(tmp_path / "outbox.jsonl")}) >= EVENTS:
                break
            time.sleep(0.5)
        time.sleep(1)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
    sent = read_outbox(tmp_path / "outbox.jsonl")
    per_key = collections.Counter(m["id"] for m in sent)
    duplicates = sum(n - 1 for n in per_key.values())
    print(f"\nrestart={restart.__name__} accepted={len(accepted)} "  # type: ignore[attr-defined]
          f"delivered={len(per_key)} duplicates={duplicates}")
    assert len(accepted) == EVENTS
    assert len(per_key) == EVENTS
    assert duplicates == 0
