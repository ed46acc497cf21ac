"""The whole flow across separate processes: API (with relay) and two dramatiq worker
processes, on the real PostgreSQL and RabbitMQ or Redis, as docker-compose runs it."""

from __future__ import annotations

import collections
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_BASE, fresh_pg_url, need_service
from tests.helpers import event, free_port, read_outbox
from tests.hub.test_processes import _wait_http

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]


def _hub(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "hub", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("broker", ["amqp://guest:guest@127.0.0.1:5672/", "redis://127.0.0.1:6379/2"])
def test_api_and_two_workers_on_a_broker(broker: str, tmp_path: Path) -> None:
    need_service("PostgreSQL", 5432)
    amqp = broker.startswith("amqp")
    need_service("RabbitMQ" if amqp else "Redis", 5672 if amqp else 6379)
    env = {**os.environ, "HUB_DATABASE_URL": fresh_pg_url(PG_BASE), "HUB_BROKER_URL": broker,
           "HUB_BROKER_QUEUE": f"hub-test-{secrets.token_hex(4)}",
           "HUB_CONSOLE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
           "HUB_LOG_LEVEL": "WARNING", "HUB_WORKER_POLL_SECONDS": "0.05"}
    subprocess.run([sys.executable, "-m", "hub", "migrate"], env=env, check=True,
                   capture_output=True)
    token = subprocess.run(
        [sys.executable, "-m", "hub", "keys", "create", "--producer", "p", "--scope", "admin"],
        env=env, check=True, capture_output=True, text=True).stdout.split()[-1]
    port = free_port()
    api = _hub("serve", "--port", str(port), env=env)
    workers = _hub("worker", "--processes", "2", "--threads", "2", env=env)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        _wait_http(f"{base}/healthz")
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for i in range(0, 100, 20):
                batch = [event(f"evt-{n}", customer={"id": f"c-{n}", "phone": f"+4851200{n:04d}"})
                         for n in range(i, i + 20)]
                assert http.post("/v1/events/batch", json={"events": batch}).status_code == 202
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len(read_outbox(tmp_path / "outbox.jsonl")) >= 100:
                    break
                time.sleep(0.2)
            time.sleep(0.5)
            state = http.get("/v1/events/evt-99").json()["state"]
    finally:
        for proc in (workers, api):
            proc.send_signal(signal.SIGTERM)
        for proc in (workers, api):
            proc.wait(timeout=90)
    sent = read_outbox(tmp_path / "outbox.jsonl")
    counts = collections.Counter(m["id"] for m in sent)
    print(f"broker={broker.split(':')[0]} accepted=100 sent={len(sent)} "
          f"duplicates={sum(v - 1 for v in counts.values())}")
    assert len(counts) == 100 and len(sent) == 100
    assert state == "processed"
