"""Counters in the hub's own database (the default backend): SQLite or PostgreSQL.

Atomicity: on PostgreSQL every ticket first takes a transaction-scoped advisory lock on
the customer, so concurrent workers (threads or processes) judge one customer's tickets
one at a time; on SQLite the engine must begin transactions IMMEDIATE (the hub's engine
does), which serialises writers on the whole file.

Speed: a decision is on the hot path of every message, so the statements are plain SQL
prepared once per shape and sent to the driver directly (2 to 5 statements a ticket).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, event

from throttling.errors import BackendError
from throttling.ledger import (
    Admission,
    Mark,
    MarkState,
    Outcome,
    ParcelStatus,
    Ticket,
    judge_parcel,
    next_mark,
    window_start,
)

_PURGE_ONE_IN = 64  # expired hits of a counter are deleted on about one ticket in 64
_MARK_KEY = ("customer_id = :c AND tracking_number = :n AND status = :s AND channel = :ch")

_PARCEL_STATE = f"""SELECT
 (SELECT max_rank FROM throttle_parcels WHERE customer_id = :c AND tracking_number = :n),
 (SELECT state FROM throttle_marks WHERE {_MARK_KEY}),
 (SELECT owner FROM throttle_marks WHERE {_MARK_KEY})"""
_RAISE_RANK = """INSERT INTO throttle_parcels (customer_id, tracking_number, max_rank, updated_ms)
 VALUES (:c, :n, :r, :now) ON CONFLICT (customer_id, tracking_number) DO UPDATE
 SET max_rank = excluded.max_rank, updated_ms = excluded.updated_ms"""
_SET_MARK = """INSERT INTO throttle_marks
 (customer_id, tracking_number, status, channel, state, owner, updated_ms)
 VALUES (:c, :n, :s, :ch, :state, :owner, :now)
 ON CONFLICT (customer_id, tracking_number, status, channel) DO UPDATE
 SET state = excluded.state, owner = excluded.owner, updated_ms = excluded.updated_ms"""
_DROP_MARK = f"DELETE FROM throttle_marks WHERE {_MARK_KEY} AND owner = :t"


@lru_cache(maxsize=16)
def _count_sql(caps: int) -> str:
    """Per cap: hits inside the window, and whether the slot owner already holds one."""
    columns = []
    for i in range(caps):
        window = f"scope_key = :s{i} AND at_ms > :w{i}"
        columns.append(f"(SELECT count(*) FROM throttle_hits WHERE {window})")
        columns.append(f"(SELECT count(*) FROM throttle_hits WHERE {window} AND member = :t)")
    return "SELECT " + ", ".join(columns)


@lru_cache(maxsize=16)
def _insert_hits_sql(caps: int) -> str:
    rows = ", ".join(f"(:s{i}, :t, :now)" for i in range(caps))
    return (f"INSERT INTO throttle_hits (scope_key, member, at_ms) VALUES {rows} "
            "ON CONFLICT (scope_key, member) DO UPDATE SET at_ms = excluded.at_ms")


@lru_cache(maxsize=16)
def _purge_sql(caps: int) -> str:
    where = " OR ".join(f"(scope_key = :s{i} AND at_ms <= :w{i})" for i in range(caps))
    return f"DELETE FROM throttle_hits WHERE {where}"


@lru_cache(maxsize=16)
def _release_sql(caps: int) -> str:
    scopes = ", ".join(f":s{i}" for i in range(caps))
    return f"DELETE FROM throttle_hits WHERE scope_key IN ({scopes}) AND member = :t"


_NAMED = re.compile(r"(?<!:):([a-z]\w*)")


@contextmanager
def locked_begin(engine: Engine, write_lock: AbstractContextManager[Any]) -> Iterator[Connection]:
    """`engine.begin()` after taking the application's write lock (see SqlCounterStore)."""
    with write_lock, engine.begin() as conn:
        yield conn


class SqlCounterStore:
    """Sliding windows as rows of `throttle_hits`, the parcel ledger in two small tables."""

    def __init__(self, engine: Engine, *, sqlite_synchronous: str | None = None,
                 owns_engine: bool = False,
                 write_lock: AbstractContextManager[Any] | None = None) -> None:
        """`sqlite_synchronous` ("NORMAL") relaxes fsync on this engine's connections: give
        the store an engine of its own then (`owns_engine` disposes it on close).
        `write_lock`: the lock the application's own SQLite writers queue on, so that this
        store's writes queue there too instead of in SQLite's busy handler, which sleeps in
        steps of up to 100 ms while another connection holds the file."""
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise BackendError(f"SQL counters support SQLite and PostgreSQL, not "
                               f"{engine.dialect.name}")
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._owns_engine = owns_engine
        self._write_lock = write_lock or nullcontext()
        self._sql: dict[str, str] = {}
        if sqlite_synchronous and not self._pg:
            mode = sqlite_synchronous.upper()
            if mode not in ("OFF", "NORMAL", "FULL", "EXTRA"):
                raise BackendError(f"unknown SQLite synchronous mode {sqlite_synchronous!r}")

            @event.listens_for(engine, "connect")
            def _relax(dbapi_conn: Any, _record: Any) -> None:
                # WAL + NORMAL: a commit survives a process crash; only a power loss can
                # undo the last few, which for counters means at worst one extra message.
                dbapi_conn.execute(f"PRAGMA synchronous={mode}")

    def _run(self, conn: Connection, sql: str, params: dict[str, Any]) -> Any:
        """Sends `sql` (written with :name parameters) straight to the driver."""
        if self._pg:
            sql = self._sql.get(sql) or self._sql.setdefault(sql, _NAMED.sub(r"%(\1)s", sql))
        return conn.exec_driver_sql(sql, params)

    def _begin(self, conn: Connection, customer_id: str) -> None:
        if self._pg:
            # Counters tolerate losing the last few commits in a server crash (at worst one
            # extra message); they never tolerate a lost update, which the lock prevents.
            # One round trip: the lock key is an integer, so no parameters are needed.
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off; "
                                 f"SELECT pg_advisory_xact_lock({_lock_key(customer_id)})")

    def admit(self, ticket: Ticket) -> Admission:
        """See CounterStore.admit."""
        with locked_begin(self.engine, self._write_lock) as conn:
            self._begin(conn, ticket.customer_id)
            mark: Mark | None = None
            if ticket.parcel is not None:
                verdict, mark = self._judge_parcel(conn, ticket, ticket.parcel)
                if verdict is not None:
                    return Admission(verdict)
            if ticket.hold:
                self._store_mark(conn, ticket, mark)
                return Admission(Outcome.HELD)
            if ticket.caps:
                full = self._take_slots(conn, ticket)
                if full is not None:
                    return Admission(Outcome.CAPPED, full)
            self._store_mark(conn, ticket, mark)
            return Admission(Outcome.ADMITTED)

    def _judge_parcel(self, conn: Connection, ticket: Ticket, parcel: ParcelStatus
                      ) -> tuple[Outcome | None, Mark | None]:
        params = _parcel_params(parcel)
        max_rank, state, owner = self._run(conn, _PARCEL_STATE, params).one()
        mark = Mark(MarkState(state), owner) if state else None
        verdict = judge_parcel(ticket, max_rank or 0, mark)
        if verdict is None and (max_rank is None or parcel.rank > max_rank):
            self._run(conn, _RAISE_RANK, {**params, "r": parcel.rank, "now": ticket.now_ms})
        return verdict, mark

    def _store_mark(self, conn: Connection, ticket: Ticket, current: Mark | None) -> None:
        if ticket.parcel is None:
            return
        mark = next_mark(ticket, current)
        if mark is not None and mark != current:
            self._run(conn, _SET_MARK, {**_parcel_params(ticket.parcel), "state": mark.state.value,
                                        "owner": mark.owner, "now": ticket.now_ms})

    def _take_slots(self, conn: Connection, ticket: Ticket) -> str | None:
        """Counts every window; if none is full, takes a slot in each (returns a full rule)."""
        caps = ticket.caps
        params: dict[str, Any] = {"t": ticket.token, "now": ticket.now_ms}
        for i, cap in enumerate(caps):
            params[f"s{i}"], params[f"w{i}"] = cap.scope, window_start(ticket, cap)
        if random.randrange(_PURGE_ONE_IN) == 0:
            self._run(conn, _purge_sql(len(caps)), params)
        counts = self._run(conn, _count_sql(len(caps)), params).one()
        missing = []
        for i, cap in enumerate(caps):
            used, mine = counts[2 * i], counts[2 * i + 1]
            if mine:
                continue  # this message already holds its slot (a re-run): idempotent
            if used >= cap.limit:
                return cap.rule
            missing.append(i)
        if missing:
            rows = {"t": ticket.token, "now": ticket.now_ms}
            rows.update({f"s{n}": caps[i].scope for n, i in enumerate(missing)})
            self._run(conn, _insert_hits_sql(len(missing)), rows)
        return None

    def release(self, ticket: Ticket) -> None:
        """See CounterStore.release."""
        with locked_begin(self.engine, self._write_lock) as conn:
            self._begin(conn, ticket.customer_id)
            if ticket.caps:
                params = {f"s{i}": cap.scope for i, cap in enumerate(ticket.caps)}
                self._run(conn, _release_sql(len(ticket.caps)), {**params, "t": ticket.token})
            if ticket.parcel is not None:
                self._run(conn, _DROP_MARK, {**_parcel_params(ticket.parcel), "t": ticket.token})

    def purge(self, before_ms: int) -> int:
        """Housekeeping: deletes hits, parcel ranks and marks last touched before `before_ms`
        (pass now minus the longest cap window, or more); returns how many rows went."""
        gone = 0
        with locked_begin(self.engine, self._write_lock) as conn:
            for table, column in (("throttle_hits", "at_ms"), ("throttle_parcels", "updated_ms"),
                                  ("throttle_marks", "updated_ms")):
                result = self._run(conn, f"DELETE FROM {table} WHERE {column} < :b",
                                   {"b": before_ms})
                gone += int(result.rowcount or 0)
        return gone

    def forget(self, customer_id: str) -> int:
        """Erasure: deletes the customer's counters, parcel ranks and marks; returns how
        many rows went."""
        gone = 0
        with locked_begin(self.engine, self._write_lock) as conn:
            self._begin(conn, customer_id)
            for sql in ("DELETE FROM throttle_parcels WHERE customer_id = :c",
                        "DELETE FROM throttle_marks WHERE customer_id = :c",
                        "DELETE FROM throttle_hits WHERE scope_key LIKE :p"):
                result = self._run(conn, sql, {"c": customer_id, "p": f"{customer_id}|%"})
                gone += int(result.rowcount or 0)
        return gone

    def close(self) -> None:
        """Disposes the engine if the store owns it."""
        if self._owns_engine:
            self.engine.dispose()


def _lock_key(customer_id: str) -> int:
    """A signed 64-bit advisory lock key for the customer (stable across processes)."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"hub-throttle").digest()
    return int.from_bytes(digest, "big", signed=True)


def _parcel_params(parcel: ParcelStatus) -> dict[str, Any]:
    return {"c": parcel.customer_id, "n": parcel.tracking_number, "s": parcel.status,
            "ch": parcel.channel}
