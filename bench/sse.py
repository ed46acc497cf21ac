"""Live inbox at scale: 1,000 concurrent SSE clients on one `hub serve` process.

Starts a real `hub serve` (uvicorn, embedded SQLite, its worker thread), creates N customers
and a session token for each (through the API), opens one `GET /v1/inbox/{id}/stream` per
customer (raw asyncio streams, so the client side stays cheap), then a writer in another
process inserts one inbox item per customer at a paced rate, as the `inbox` channel does in
a worker. For every client: delay from the row's commit to the client receiving its
`message` event. Prints received/expected, p50/p95/p99/max and the server's RSS (idle, with
all clients connected, after delivery).

Target (issue 14): every client gets its message, p99 <= 1 s.

Run: `.venv/bin/python bench/sse.py [--clients 1000] [--rate 200]` (about half a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import rss_mb, wait_healthy  # noqa: E402
from tests.helpers import free_port  # noqa: E402


def _raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def _fill_customers(url: str, count: int) -> None:
    """`count` customers `app-1`..`app-N`, inserted by the database itself."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
            f"WHERE g < {count}) INSERT INTO customers (tenant, external_id, locale, tone, "
            "time_zone, segment, preferences, phone_verified, email_verified, created_at, "
            "updated_at) SELECT 'default', 'app-' || g, 'pl', 'formal', 'Europe/Warsaw', "
            "'individual', '{}', false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM s"))
    engine.dispose()


def _writer_main(url: str, count: int, rate: float, conn: Any) -> None:
    """Another process, like a worker: one inbox item per customer, `rate` a second; sends
    back {item id: commit time}."""
    from sqlalchemy import select

    from hub.db import Database
    from hub.models import Customer, InboxItem

    db = Database(url)
    with db.sessions() as session:
        pks = {cid: pk for cid, pk in session.execute(select(Customer.external_id, Customer.id))}
    committed: dict[int, float] = {}
    start = time.monotonic()
    for n in range(1, count + 1):
        time.sleep(max(0.0, start + (n - 1) / rate - time.monotonic()))
        with db.transaction() as session:
            item = InboxItem(customer_pk=pks[f"app-{n}"], idempotency_key=secrets.token_hex(16),
                             event_type="parcel.ready_for_pickup", category="transactional",
                             title="Paczka czeka w automacie", body="Odbierz do jutra 19:40.",
                             parcel=f"PL{n:010d}", locale="pl")
            session.add(item)
            session.flush()
            item_id = item.id
        committed[item_id] = time.time()
    db.dispose()
    conn.send(committed)


class Client:
    """One SSE connection over a raw asyncio stream (HTTP/1.1, chunked)."""

    def __init__(self, customer: str, token: str) -> None:
        self.customer, self.token = customer, token
        self.ready = asyncio.Event()
        self.received: dict[int, float] = {}  # item id -> time received
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write((f"GET /v1/inbox/{self.customer}/stream HTTP/1.1\r\n"
                           f"Host: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                           f"Authorization: Bearer {self.token}\r\n\r\n").encode())
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"{self.customer}: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        buffer = b""
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            buffer += (await reader.readexactly(size + 2))[:-2]
            *events, buffer = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
            for event in events:
                self._handle(event.decode())

    def _handle(self, event: str) -> None:
        fields = dict(line.split(": ", 1) for line in event.split("\n") if ": " in line
                      and not line.startswith(":"))
        if fields.get("event") == "unread":
            self.ready.set()
        elif fields.get("event") == "message":
            self.received[int(fields["id"])] = time.time()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tokens(base: str, key: str, count: int) -> list[str]:
    async def issue() -> list[str]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            gate = asyncio.Semaphore(16)

            async def one(n: int) -> str:
                async with gate:
                    for attempt in range(3):  # a keep-alive connection the server just closed
                        try:
                            reply = await client.post(f"/v1/customers/app-{n}/session-token")
                            break
                        except httpx.RemoteProtocolError:
                            if attempt == 2:
                                raise
                    reply.raise_for_status()
                    return str(reply.json()["token"])

            return list(await asyncio.gather(*(one(n) for n in range(1, count + 1))))

    return asyncio.run(issue())


async def _measure(port: int, server_pid: int, tokens: list[str], url: str, rate: float
                   ) -> dict[str, Any]:
    clients = [Client(f"app-{n}", token) for n, token in enumerate(tokens, start=1)]
    started = time.monotonic()
    tasks = [asyncio.create_task(c.run(port)) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), timeout=120)
    connect_s = time.monotonic() - started
    rss_connected = rss_mb([server_pid])
    parent, child = mp.Pipe()
    writer = mp.get_context("spawn").Process(target=_writer_main,
                                             args=(url, len(clients), rate, child))
    writer.start()
    while not parent.poll():
        if not writer.is_alive():
            raise RuntimeError("the writer process failed")
        await asyncio.sleep(0.1)
    committed: dict[int, float] = parent.recv()
    await asyncio.to_thread(writer.join)  # the clients keep reading meanwhile
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(len(c.received) for c in clients) < len(clients):
        await asyncio.sleep(0.1)
    rss_after = rss_mb([server_pid])
    for client in clients:
        client.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays = sorted(at - committed[item] for c in clients for item, at in c.received.items()
                    if item in committed)
    return {"connect_s": connect_s, "rss_connected": rss_connected, "rss_after": rss_after,
            "delays": delays, "expected": len(clients),
            "clients_with_message": sum(1 for c in clients if c.received)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200, help="inbox rows written a second")
    args = parser.parse_args()
    _raise_open_files(args.clients * 2 + 256)  # inherited by `hub serve`
    tmp = Path(tempfile.mkdtemp(prefix="hub-sse-bench-"))
    url = f"sqlite:///{tmp / 'hub.db'}"
    env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_LOG_LEVEL": "ERROR",
           "HUB_SECRET_KEY": secrets.token_urlsafe(32),
           "HUB_CONSOLE_OUTBOX_PATH": str(tmp / "outbox.jsonl")}
    hub = [sys.executable, "-m", "hub"]
    subprocess.run([*hub, "migrate"], env=env, check=True, capture_output=True)
    _fill_customers(url, args.clients)
    key = subprocess.run([*hub, "keys", "create", "--producer", "bench", "--scope", "admin"],
                         env=env, check=True, capture_output=True, text=True).stdout.split()[-1]
    port = free_port()
    server = subprocess.Popen([*hub, "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        rss_idle = rss_mb([server.pid])
        tokens = _tokens(base, key, args.clients)
        result = asyncio.run(_measure(port, server.pid, tokens, url, args.rate))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    delays = result["delays"]

    def pct(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000 if delays else float("nan")

    print(json.dumps({"clients": args.clients, "rate_per_s": args.rate,
                      "received": len(delays), "expected": result["expected"],
                      "clients_with_message": result["clients_with_message"],
                      "connect_all_s": round(result["connect_s"], 2),
                      "delay_ms": {"p50": round(pct(0.50), 1), "p95": round(pct(0.95), 1),
                                   "p99": round(pct(0.99), 1),
                                   "max": round(delays[-1] * 1000, 1) if delays else None,
                                   "mean": round(statistics.fmean(delays) * 1000, 1)
                                   if delays else None},
                      "server_rss_mb": {"idle": round(rss_idle, 1),
                                        "connected": round(result["rss_connected"], 1),
                                        "after": round(result["rss_after"], 1)}}, indent=2))


if __name__ == "__main__":
    main()
