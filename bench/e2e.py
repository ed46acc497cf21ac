"""End to end: event accepted over HTTP → SMS at a loopback Twilio (the real SDK, the fake's
wire format), with the hub running as real processes.

Measures, in one run:
  * the maximum throughput (a flood of batches) and, at 50 % and 100 % of it, the latency from
    the 202 to the provider receiving the message (p50/p95/p99), in embedded mode (SQLite,
    `hub serve` with its worker thread) and scale-out mode (PostgreSQL, Redis counters,
    RabbitMQ, `hub serve` + `hub worker`);
  * the ceiling: a bare loop in one process that renders the same messages and POSTs them
    with the Twilio SDK to the same fake; ratio = hub throughput per worker process / ceiling;
  * 1 vs 2 worker processes on RabbitMQ;
  * the cost per event with 10k and with 1M customers in the store, and the workers' RSS.

Run: `.venv/bin/python bench/e2e.py [--quick]` (about 10 minutes; --quick: smaller runs, about 2).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.twilio import FakeTwilio  # noqa: E402
from tests.helpers import free_port  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


# --- the loopback provider, in its own process so it does not share the hub's GIL ----------

def _provider_main(conn: Any) -> None:
    arrivals: list[tuple[str, float]] = []
    lock = threading.Lock()

    class Timed(FakeTwilio):
        def handle(self, req: Any) -> Any:
            reply = super().handle(req)
            with lock:
                arrivals.append((req.form().get("To", ""), time.time()))
            return reply

    with Timed() as fake:
        conn.send((fake.url, fake.account_sid, fake.auth_token))
        while True:
            command = conn.recv()
            if command == "stop":
                return
            with lock:
                conn.send(list(arrivals))
                arrivals.clear()


class Provider:
    """A FakeTwilio in a child process; `drain()` returns (phone, arrival time) pairs."""

    def __init__(self) -> None:
        self._conn, child = mp.Pipe()
        self._proc = mp.get_context("spawn").Process(target=_provider_main, args=(child,),
                                                     daemon=True)
        self._proc.start()
        self.url, self.sid, self.token = self._conn.recv()

    def drain(self) -> list[tuple[str, float]]:
        self._conn.send("drain")
        return self._conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=10)


# --- the hub as processes ------------------------------------------------------------------


def _pg_schema() -> str:
    from sqlalchemy import create_engine, text

    schema = f"bench_e2e_{secrets.token_hex(4)}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return f"{PG}?options=-csearch_path%3D{schema}"


@dataclass
class Topology:
    name: str
    database_url: str
    broker: str | None = None
    worker_processes: int = 0  # 0: the embedded worker inside `hub serve`
    redis_counters: bool = False

    @property
    def workers(self) -> int:
        return max(1, self.worker_processes)


def _hub_env(top: Topology, provider: Provider) -> dict[str, str]:
    env = {**os.environ, "HUB_DATABASE_URL": top.database_url, "HUB_LOG_LEVEL": "ERROR",
           "HUB_TWILIO_ACCOUNT_SID": provider.sid, "HUB_TWILIO_AUTH_TOKEN": provider.token,
           "HUB_TWILIO_FROM": "+48500000000", "HUB_TWILIO_API_BASE_URL": provider.url,
           "HUB_WORKER_POLL_SECONDS": "0.02", "HUB_WORKER_BATCH": "50",
           "HUB_BROKER_QUEUE": f"bench-{secrets.token_hex(3)}",
           "HUB_THROTTLE_REDIS_PREFIX": f"bench:{secrets.token_hex(3)}:"}
    env.pop("HUB_BROKER_URL", None)
    if top.broker:
        env["HUB_BROKER_URL"] = top.broker
    if top.redis_counters:
        env |= {"HUB_THROTTLE_BACKEND": "redis", "HUB_REDIS_URL": "redis://127.0.0.1:6379/3"}
    return env


@contextmanager
def running_hub(top: Topology, provider: Provider, customers: int = 0
                ) -> Iterator[tuple[str, str, list[subprocess.Popen[bytes]]]]:
    """Starts the topology; yields (base url, API key, worker processes)."""
    env = _hub_env(top, provider)
    hub = [sys.executable, "-m", "hub"]
    subprocess.run([*hub, "migrate"], env=env, check=True, capture_output=True)
    if customers:
        _fill_customers(top.database_url, customers)
    token = subprocess.run([*hub, "keys", "create", "--producer", "bench", "--scope", "admin"],
                           env=env, check=True, capture_output=True, text=True).stdout.split()[-1]
    port = free_port()
    serve = [*hub, "serve", "--port", str(port)]
    if top.worker_processes and not top.broker:
        serve.append("--no-worker")
    procs = [subprocess.Popen(serve, env=env)]
    workers = []
    if top.worker_processes:
        for _ in range(top.worker_processes):
            workers.append(subprocess.Popen([*hub, "worker", "--threads", "4"], env=env))
    procs += workers
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base, token, workers or procs[:1]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _fill_customers(url: str, count: int) -> None:
    """`count` customers with a phone each, inserted by the database itself."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    now = "CURRENT_TIMESTAMP"
    select = (f"SELECT 'cust-' || g, '+4860' || (1000000 + g), 'pl', 'formal', 'Europe/Warsaw', "
              f"'individual', '{{}}', false, false, {now}, {now}")
    columns = ("external_id, phone, locale, tone, time_zone, segment, preferences, "
               "phone_verified, email_verified, created_at, updated_at")
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(
                f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {count}) "
                f"INSERT INTO customers ({columns}) {select} FROM s"))
        else:
            conn.execute(text(f"INSERT INTO customers ({columns}) {select} "
                              f"FROM generate_series(1, {count}) g"))
    engine.dispose()


def _rss_mb(procs: list[subprocess.Popen[bytes]]) -> float:
    """Resident memory of the given processes and their children, in MB."""
    total = 0
    pids = [p.pid for p in procs]
    for pid in list(pids):
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pids += [int(c) for c in children]
        except OSError:
            pass
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# --- load ----------------------------------------------------------------------------------

def _event(n: int, tag: str, customers: int) -> dict[str, Any]:
    customer = f"cust-{(n * 7919) % customers + 1}" if customers else f"{tag}-c{n}"
    phone = f"+4869{n:07d}"
    return {"event_id": f"{tag}-{n}", "type": "parcel.ready_for_pickup",
            "occurred_at": "2026-11-25T14:20:00+01:00",
            "customer": {"id": customer, "phone": phone, "locale": "pl"},
            "parcel": {"tracking_number": f"PL{tag.upper()}{n:08d}",
                       "pickup_point": {"id": "WAW123M", "name": "Paczkomat WAW123M",
                                        "code": "482913",
                                        "deadline": "2026-12-26T19:40:00+01:00"}}}


def _await(provider: Provider, phones: set[str], timeout: float) -> dict[str, float]:
    seen: dict[str, float] = {}
    deadline = time.time() + timeout
    while time.time() < deadline and not phones <= seen.keys():
        for phone, at in provider.drain():
            seen.setdefault(phone, at)
        time.sleep(0.05)
    missing = len(phones - seen.keys())
    if missing:
        raise RuntimeError(f"{missing} messages never reached the provider")
    return seen


def flood(base: str, token: str, provider: Provider, count: int, tag: str,
          customers: int = 0) -> float:
    """Maximum throughput: `count` events in batches of 100 as fast as accepted; msgs/s."""
    events = [_event(n, tag, customers) for n in range(count)]
    started = time.time()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as http:
        for i in range(0, count, 100):
            reply = http.post("/v1/events/batch", json={"events": events[i:i + 100]})
            reply.raise_for_status()
    seen = _await(provider, {e["customer"]["phone"] for e in events}, timeout=600)
    return count / (max(seen.values()) - started)


def paced(base: str, token: str, provider: Provider, rate: float, seconds: float,
          tag: str) -> tuple[float, list[float]]:
    """Open-loop load at `rate` events/s; returns (delivered msgs/s, latencies in ms)."""
    count = max(20, int(rate * seconds))
    accepted: dict[str, float] = {}
    lock = threading.Lock()
    start = time.time() + 0.2
    clients = 8

    def run(slot: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as http:
            for n in range(slot, count, clients):
                delay = start + n / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                body = _event(n, tag, 0)
                http.post("/v1/events", content=json.dumps(body),
                          headers={"content-type": "application/json"}).raise_for_status()
                with lock:
                    accepted[body["customer"]["phone"]] = time.time()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = _await(provider, set(accepted), timeout=600)
    latencies = sorted((seen[p] - accepted[p]) * 1000 for p in accepted)
    return count / (max(seen.values()) - start), latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def ceiling(provider: Provider, count: int) -> float:
    """A bare loop: render the same SMS and POST it with the Twilio SDK; msgs/s."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    from hub.runtime import build_renderer
    from hub.settings import Settings
    from templates import RenderRequest

    renderer = build_renderer(Settings())
    http = TwilioHttpClient()
    client = Client(provider.sid, provider.token, http_client=http)
    client.api.base_url = provider.url
    from datetime import UTC, datetime
    started = time.perf_counter()
    for n in range(count):
        payload = _event(n, "ceil", 0)
        context = renderer.context(payload, {"customer_id": payload["customer"]["id"]},
                                   now=datetime.now(UTC), channel="sms", category="transactional")
        rendered = renderer.render(RenderRequest("parcel.ready_for_pickup", "sms", ("pl", "en"),
                                                 "formal", context))
        client.messages.create(to=payload["customer"]["phone"], from_="+48500000000",
                               body=rendered.parts["body"])
    elapsed = time.perf_counter() - started
    provider.drain()
    return count / elapsed


# --- the run -------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 300 if args.quick else 1500
    seconds = 5 if args.quick else 15
    provider = Provider()
    rows: list[tuple[str, ...]] = []
    try:
        bare = ceiling(provider, n // 2)
        rows.append(("ceiling: render + SDK POST loop", "1 process", f"{bare:,.0f}", "", "", "",
                     "1.00"))
        with tempfile.TemporaryDirectory() as tmp:
            topologies = [
                Topology("embedded (SQLite, worker thread)", f"sqlite:///{tmp}/e2e.db"),
                Topology("scale-out (PG, RabbitMQ, Redis)", _pg_schema(), AMQP, 1, True),
                Topology("scale-out (PG, RabbitMQ, Redis)", _pg_schema(), AMQP, 2, True),
            ]
            by_workers: dict[int, float] = {}
            for top in topologies:
                with running_hub(top, provider) as (base, token, _procs):
                    flood(base, token, provider, 100, f"w{secrets.token_hex(2)}")  # warm up
                    peak = flood(base, token, provider, n, f"f{secrets.token_hex(2)}")
                    if top.broker:
                        by_workers[top.worker_processes] = peak
                    for share in (0.5, 1.0):
                        got, lat = paced(base, token, provider, peak * share, seconds,
                                         f"p{secrets.token_hex(2)}")
                        rows.append((top.name, f"{top.workers} proc, {int(share * 100)} % load",
                                     f"{got:,.0f}", f"{pct(lat, 50):.0f}", f"{pct(lat, 95):.0f}",
                                     f"{pct(lat, 99):.0f}", f"{got / top.workers / bare:.2f}"))
                    rows.append((top.name, f"{top.workers} proc, flood (max)", f"{peak:,.0f}",
                                 "", "", "", f"{peak / top.workers / bare:.2f}"))
            scaling = by_workers[2] / by_workers[1]
            cost = []
            for size in (10_000, 1_000_000):
                top = Topology(f"scale-out, {size:,} customers", _pg_schema(), AMQP, 1, True)
                with running_hub(top, provider, customers=size) as (base, token, procs):
                    flood(base, token, provider, 100, f"w{secrets.token_hex(2)}", size)
                    peak = flood(base, token, provider, n, f"c{secrets.token_hex(2)}", size)
                    cost.append((size, 1000 / peak, _rss_mb(procs)))
    finally:
        provider.stop()
    header = ("topology", "load", "msgs/s", "p50 ms", "p95 ms", "p99 ms", "per proc / ceiling")
    _table([header, *rows])
    print(f"\n1 → 2 worker processes on RabbitMQ: {by_workers[1]:,.0f} → {by_workers[2]:,.0f} "
          f"msgs/s = {scaling:.2f}×")
    print()
    _table([("customers in store", "ms per event", "worker RSS MB")]
           + [(f"{s:,}", f"{c:.2f}", f"{r:.0f}") for s, c, r in cost])
    print(f"cost 1M / 10k = {cost[1][1] / cost[0][1]:.2f}×")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
