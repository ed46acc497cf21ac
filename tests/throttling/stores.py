"""Builds each counter backend on a fresh, isolated store (shared by the contract tests,
the racing subprocesses and the benchmark)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from hub import migrate
from hub.db import Database
from throttling import CounterStore, MemoryCounterStore
from throttling.backends.redis import RedisCounterStore
from throttling.backends.sql import SqlCounterStore
from throttling.ledger import CapCheck, ParcelStatus, Ticket

BACKENDS = ("memory", "sqlite", "postgresql", "redis")


def open_store(backend: str, spec: str) -> tuple[CounterStore, Callable[[], None]]:
    """A store on an existing location (`spec`: a database URL or a Redis key prefix)."""
    if backend == "redis":
        from tests.conftest import REDIS_URL

        store = RedisCounterStore.from_url(REDIS_URL, spec)
        return store, store.close
    db = Database(spec)
    return SqlCounterStore(db.engine), db.dispose


@contextmanager
def fresh_location(backend: str, tmp_dir: str) -> Iterator[str]:
    """A new empty location for `backend`, removed afterwards."""
    from tests.conftest import PG_BASE, REDIS_URL, fresh_pg_url

    if backend == "sqlite":
        url = f"sqlite:///{tmp_dir}/throttle.db"
        _migrate(url)
        yield url
    elif backend == "postgresql":
        url = fresh_pg_url(PG_BASE)
        _migrate(url)
        try:
            yield url
        finally:
            admin = create_engine(PG_BASE)
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {url.rsplit('%3D', 1)[1]} CASCADE"))
            admin.dispose()
    elif backend == "redis":
        import redis

        prefix = f"test:throttle:{secrets.token_hex(4)}:"
        try:
            yield prefix
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()
    else:
        yield ""


def _migrate(url: str) -> None:
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()


def make_store(backend: str, location: str) -> tuple[CounterStore, Callable[[], None]]:
    if backend == "memory":
        return MemoryCounterStore(), lambda: None
    return open_store(backend, location)


def ticket(token: str, now_ms: int, *caps: tuple[str, int, int], customer: str = "c-1",
           parcel: tuple[str, str, int] | None = None, channel: str = "sms",
           hold: bool = False, repeatable: bool = False) -> Ticket:
    """A ticket: caps as (rule, limit, window_ms); parcel as (tracking, status, rank)."""
    checks = tuple(CapCheck(rule, f"{customer}|{rule}", limit, window) for rule, limit, window
                   in caps)
    status = (ParcelStatus(customer, parcel[0], parcel[1], channel, parcel[2], repeatable)
              if parcel else None)
    return Ticket(customer, f"{token}|{channel}", now_ms, status, checks, hold)
