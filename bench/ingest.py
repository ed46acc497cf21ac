"""Intake throughput: the hub's POST /v1/events (single and batch) against a bare FastAPI
endpoint doing one INSERT + COMMIT on the same store (the ceiling), on SQLite and PostgreSQL.

Run: `.venv/bin/python bench/ingest.py [--seconds 5] [--clients 8] [--backends sqlite,postgresql]`
Each server runs in its own process (uvicorn, one worker, embedded worker off so only intake
is measured); this process drives it with keep-alive HTTP clients in threads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Request

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402


def _warsaw(offset: timedelta = timedelta()) -> str:
    """Now (plus `offset`) in Warsaw time: the events stay fresh whatever the date."""
    return (datetime.now(ZoneInfo("Europe/Warsaw")) + offset).isoformat(timespec="seconds")


def sample_event(event_id: str) -> dict[str, Any]:
    """A pickup notice that occurred now, its deadline a day ahead."""
    return {
        "event_id": event_id, "type": "parcel.ready_for_pickup",
        "occurred_at": _warsaw(),
        "customer": {"id": "c-1001", "name": "Anna Kowalska", "phone": "+48512345678",
                     "email": "anna.kowalska@example.pl", "locale": "pl"},
        "parcel": {"tracking_number": "PL0001234567", "carrier": "demo-carrier",
                   "links": {"track": "https://track.example.pl/PL0001234567"},
                   "pickup_point": {"id": "WAW123M", "name": "Paczkomat WAW123M", "code": "482913",
                                    "deadline": _warsaw(timedelta(days=1))}},
        "data": {},
    }


# --- server side (run in a child process) -------------------------------------------------

def serve_bare(url: str, port: int) -> None:
    """A bare FastAPI endpoint: parse JSON, one INSERT, COMMIT. The ceiling."""
    import uvicorn
    from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, insert

    from hub.db import Database

    db = Database(url)  # the same engine setup and SQLite writer queue the hub uses
    engine = db.engine
    meta = MetaData()
    table = Table("bench_bare", meta, Column("id", Integer, primary_key=True),
                  Column("event_id", String(128)), Column("payload", JSON))
    meta.drop_all(engine)
    meta.create_all(engine)
    app = FastAPI()

    @app.post("/bare", status_code=202)
    async def bare(request: Request) -> dict[str, str]:
        body = await request.json()

        def write() -> None:
            with db.transaction() as session:
                session.connection().execute(
                    insert(table).values(event_id=body["event_id"], payload=body)
                )

        import anyio
        await anyio.to_thread.run_sync(write)
        return {"status": "accepted"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve_hub(url: str, port: int) -> None:
    import uvicorn

    from hub.api.app import create_app
    from hub.runtime import HubRuntime
    from hub.settings import Settings

    runtime = HubRuntime.build(Settings(database_url=url, log_level="WARNING"))
    uvicorn.run(create_app(runtime, embedded_worker=False), host="127.0.0.1", port=port,
                log_level="warning")


# --- load side -----------------------------------------------------------------------------


def _start(kind: str, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--url", url,
                             "--port", str(port)], cwd=ROOT, env={**os.environ, "TZ": "UTC"})
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/docs", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _drive(base: str, path: str, headers: dict[str, str], batch: int, seconds: float,
           clients: int) -> float:
    """Events accepted per second over `seconds` with `clients` concurrent connections."""
    stop = time.monotonic() + seconds
    counts = [0] * clients
    errors: list[str] = []

    def run(slot: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            while time.monotonic() < stop:
                ids = [uuid.uuid4().hex for _ in range(batch)]
                if batch == 1:
                    content = json.dumps(sample_event(ids[0]))
                else:
                    content = json.dumps({"events": [sample_event(i) for i in ids]})
                reply = http.post(path, content=content,
                                  headers={"content-type": "application/json"})
                if reply.status_code != 202:
                    errors.append(f"{reply.status_code} {reply.text[:200]}")
                    return
                counts[slot] += batch

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return sum(counts) / (time.monotonic() - started)


def _store_url(backend: str, tmp: Path, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / name}.db"
    from sqlalchemy import create_engine, text

    schema = f"bench_{name}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return f"{PG}?options=-csearch_path%3D{schema}"


def _hub_key(url: str) -> str:
    from hub.db import Database
    from hub.keys import Scope, create_key
    from hub.migrate import upgrade

    db = Database(url)
    upgrade(db)
    token = create_key(db, "bench", [Scope.EVENTS_WRITE])
    db.dispose()
    return token


def measure(backend: str, seconds: float, clients: int) -> list[tuple[str, ...]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bare_url = _store_url(backend, Path(tmp), "bare")
        proc, base = _start("bare", bare_url)
        try:
            ceiling = _drive(base, "/bare", {}, 1, seconds, clients)
        finally:
            proc.terminate()
            proc.wait()
        hub_url = _store_url(backend, Path(tmp), "hub")
        token = _hub_key(hub_url)
        proc, base = _start("hub", hub_url)
        auth = {"Authorization": f"Bearer {token}"}
        try:
            single = _drive(base, "/v1/events", auth, 1, seconds, clients)
            batch = _drive(base, "/v1/events/batch", auth, 100, seconds, max(2, clients // 4))
        finally:
            proc.terminate()
            proc.wait()
    rows.append((backend, "bare insert+commit (ceiling)", f"{ceiling:,.0f}", "1.00"))
    rows.append((backend, "hub single event", f"{single:,.0f}", f"{single / ceiling:.2f}"))
    rows.append((backend, "hub batch of 100", f"{batch:,.0f}", f"{batch / ceiling:.2f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--serve", choices=["bare", "hub"])
    parser.add_argument("--url")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        os.environ["HUB_LOG_LEVEL"] = "WARNING"
        (serve_bare if args.serve == "bare" else serve_hub)(args.url, args.port)
        return
    rows = [("store", "endpoint", "events/s", "ratio to ceiling")]
    for backend in args.backends.split(","):
        rows += measure(backend, args.seconds, args.clients)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
