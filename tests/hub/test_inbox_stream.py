"""The inbox's live stream (issue 14, item 5): SSE from a real uvicorn server, rows written by
another connection (as a worker process would), replay after a reconnect, heartbeats,
cleanup on disconnect; and the poller's handling of PostgreSQL's out-of-order commits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event, text

import hub.api.inbox
from hub.api.app import create_app
from hub.customers import get_customer
from hub.db import Database
from hub.inbox_feed import InboxFeed
from hub.models import Customer, InboxItem
from hub.runtime import HubRuntime
from tests.conftest import PG_BASE, fresh_pg_url, need_service
from tests.helpers import api_key, free_port, make_runtime, served
from tests.hub.inbox_rows import add_item

Event = tuple[str, str | None, dict[str, Any] | None]  # (event or "ping", id, data)


@contextmanager
def serving(runtime: HubRuntime) -> Iterator[tuple[str, InboxFeed]]:
    app = create_app(runtime)
    with served(runtime, free_port(), app) as base:
        yield base, app.state.inbox_feed


def sse_events(response: httpx.Response) -> Iterator[Event]:
    """The stream's events (comments as "ping")."""
    name, ident, data = "message", None, None
    for line in response.iter_lines():
        if line.startswith(":"):
            yield "ping", None, None
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("id:"):
            ident = line[3:].strip()
        elif line.startswith("data:"):
            data = json.loads(line[5:].strip())
        elif line == "" and data is not None:
            yield name, ident, data
            name, ident, data = "message", None, None


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(hub.api.inbox, "HEARTBEAT_SECONDS", 0.3)
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    writer = Database(runtime.settings.database_url)  # like the worker: its own connection
    with serving(runtime) as (base, feed), httpx.Client(base_url=base, timeout=5) as client:
        client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        for cid in ("c-1", "c-2"):
            client.put(f"/v1/customers/{cid}", json={"name": cid})
        token = client.post("/v1/customers/c-1/session-token").json()["token"]
        yield client, writer, feed, {"Authorization": f"Bearer {token}"}
    writer.dispose()
    runtime.db.dispose()


def test_a_row_written_elsewhere_reaches_the_stream_within_a_second(live: Any) -> None:
    client, writer, feed, app_auth = live
    with client.stream("GET", "/v1/inbox/c-1/stream", headers=app_auth) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        assert next(events) == ("unread", None, {"unread_count": 0})
        assert feed.subscribers == 1
        add_item(writer, "c-2", "not Anna's")
        written = time.monotonic()
        item_id = add_item(writer, "c-1", "Paczka czeka")
        name, ident, data = next(e for e in events if e[0] != "ping")
        assert time.monotonic() - written < 1.0
        assert (name, ident) == ("message", str(item_id))
        assert data is not None and data["title"] == "Paczka czeka"
        assert next(e for e in events if e[0] != "ping") == ("unread", None, {"unread_count": 1})
        client.post(f"/v1/inbox/c-1/items/{item_id}/read", headers=app_auth)
        assert next(e for e in events if e[0] != "ping") == ("unread", None, {"unread_count": 0})
        assert next(events)[0] == "ping"  # heartbeat comments while nothing happens
    deadline = time.monotonic() + 3
    while feed.subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert feed.subscribers == 0  # the disconnect released the subscription


def test_a_reconnect_with_last_event_id_replays_what_was_missed(live: Any) -> None:
    client, writer, _feed, app_auth = live
    first = add_item(writer, "c-1", "first")
    missed = [add_item(writer, "c-1", f"missed {n}") for n in range(2)]
    with client.stream("GET", "/v1/inbox/c-1/stream",
                       headers={**app_auth, "Last-Event-ID": str(first)}) as response:
        events = sse_events(response)
        replayed = [next(events) for _ in range(3)]
    assert [(e[0], e[1]) for e in replayed] == [("message", str(missed[0])),
                                                ("message", str(missed[1])), ("unread", None)]
    assert replayed[2][2] == {"unread_count": 3}
    other = client.get("/v1/inbox/c-2/stream", headers=app_auth)
    assert other.status_code == 403
    assert client.get("/v1/inbox/nobody/stream").status_code == 404


@pytest.fixture
def pg_store(tmp_path: Path) -> Iterator[HubRuntime]:
    need_service("PostgreSQL", 5432)
    url = fresh_pg_url(PG_BASE)
    runtime = make_runtime(url, tmp_path)
    yield runtime
    runtime.db.dispose()
    admin = create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {url.rsplit('%3D', 1)[1]} CASCADE"))
    admin.dispose()


@pytest.mark.postgres
def test_a_lower_id_committed_later_is_still_delivered(pg_store: HubRuntime) -> None:
    runtime = pg_store
    with runtime.db.transaction() as session:
        session.add(Customer(external_id="c-1", preferences={}))
    with runtime.db.sessions() as session:
        customer = get_customer(session, "default", "c-1")
        assert customer is not None
        pk = customer.id

    def row(key: str) -> InboxItem:
        return InboxItem(customer_pk=pk, idempotency_key=key, event_type="parcel.delivered",
                         category="transactional", title=key, body=key, locale="pl")

    async def scenario() -> list[int]:
        feed = InboxFeed(runtime.db, interval=0.05)
        poller = asyncio.create_task(feed.run())
        sub = feed.subscribe("default", pk)
        await asyncio.sleep(0.2)
        slow = runtime.db.sessions()  # a transaction that got its id first, commits last
        slow.add(row("slow"))
        slow.flush()
        with runtime.db.transaction() as session:
            session.add(row("fast"))
        await asyncio.sleep(0.3)  # the poller has seen "fast" and skipped over "slow"'s id
        slow.commit()
        slow.close()
        await asyncio.sleep(0.3)
        poller.cancel()
        return [e.item_id for e in sub.events if e.item_id is not None]

    delivered = asyncio.run(scenario())
    assert len(delivered) == 2 and delivered[0] > delivered[1]


def test_one_query_per_tick_however_many_streams_and_bounded_buffers(tmp_path: Path) -> None:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    with runtime.db.transaction() as session:
        customers = [Customer(external_id=f"c-{n}", preferences={}) for n in range(3)]
        session.add_all(customers)
        session.flush()
        pks = [c.id for c in customers]
    statements: list[str] = []
    event.listen(runtime.db._read_engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))

    async def tick(feed: InboxFeed) -> None:
        feed._fan_out(await asyncio.to_thread(feed._read, {pk for _, pk in feed._subs}))

    async def scenario() -> None:
        feed = InboxFeed(runtime.db, buffer=3)
        subs = [feed.subscribe("default", pks[n % 3]) for n in range(300)]
        await tick(feed)  # catches up with max(id)
        statements.clear()
        await tick(feed)
        assert len([s for s in statements if "inbox_items" in s]) == 1
        for n in range(4):
            add_item(runtime.db, "c-0", f"m{n}")
        await tick(feed)
        assert subs[0].overflowed and len(subs[0].events) == 3  # bounded: the client resumes
        assert not subs[1].events  # another customer's stream heard nothing

    asyncio.run(scenario())
    runtime.db.dispose()
