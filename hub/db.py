"""Engine and sessions: one code path for SQLite (WAL, the embedded default) and PostgreSQL."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

P = ParamSpec("P")
R = TypeVar("R")


def retry_on_conflict(fn: Callable[P, R]) -> Callable[P, R]:
    """Runs an idempotent unit of work again when a concurrent twin won a unique index.

    Two identical requests that both find nothing and both insert (a webhook delivered twice
    at once, two PUTs of one new customer) race on PostgreSQL, where readers do not queue
    behind writers: the loser's IntegrityError would be a 500. Its transaction has rolled
    back, so running it again sees the winner's row and takes the update/no-op path. A
    FastAPI `Response` argument gets its status reset, so the loser reports an update.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(3):
            try:
                return fn(*args, **kwargs)
            except IntegrityError:
                if attempt == 2:
                    raise
                for value in kwargs.values():
                    if type(value).__name__ == "Response" and hasattr(value, "status_code"):
                        value.status_code = None
        raise AssertionError("unreachable")

    return wrapper


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores instants as UTC on every backend and always returns aware datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str, immediate: bool = True, **kwargs: Any) -> Engine:
    """An engine tuned for its backend: SQLite gets WAL, a busy timeout and, for writers,
    BEGIN IMMEDIATE.

    Every engine hides SQL parameters from its exceptions: a traceback in the logs must not
    print a customer's phone, e-mail or payload."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _tune_sqlite(engine, "BEGIN IMMEDIATE" if immediate else "BEGIN")
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def _tune_sqlite(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's implicit handling.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed (accepted) event survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of deadlocking when a reader upgrades to a writer.
        conn.exec_driver_sql(begin)


class Database:
    """The store as every component receives it: `transaction()` for writes, `sessions()`
    for reads.

    On SQLite, writers take the database lock up front (BEGIN IMMEDIATE) and queue on an
    in-process lock first: SQLite's own busy handler sleeps in coarse steps (up to 100 ms),
    which under concurrent requests costs far more than the write itself.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        if self.engine.dialect.name == "sqlite":
            self._read_engine = make_engine(url, immediate=False, **engine_kwargs)
            self._write_lock: AbstractContextManager[Any] = threading.RLock()
        else:
            self._read_engine = self.engine
            self._write_lock = nullcontext()
        self.sessions = sessionmaker(self._read_engine, expire_on_commit=False)

    @property
    def write_lock(self) -> AbstractContextManager[Any]:
        """What every writer of this store's file queues on (SQLite; a no-op elsewhere)."""
        return self._write_lock

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write session whose work commits on success and rolls back on any error."""
        with self._write_lock, self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A plain connection for a hot-path read (no ORM session, no objects)."""
        with self._read_engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
        self._read_engine.dispose()


def insert_ignoring(session: Session, model: Any, rows: list[dict[str, Any]],
                    conflict: list[str]) -> None:
    """Inserts rows, skipping those that collide on the unique columns `conflict` (the row
    already there wins), on SQLite and PostgreSQL alike (a plain executemany: no ORM)."""
    if not rows:
        return
    statement = _insert_ignoring(model.__table__, session.get_bind().dialect.name,
                                 tuple(conflict))
    session.connection().execute(statement, rows)


@lru_cache(maxsize=64)
def _insert_ignoring(table: Any, dialect: str, conflict: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, built once per table (hot: the load step)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
