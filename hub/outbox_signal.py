"""New outbox jobs wake the relay at once (PostgreSQL LISTEN/NOTIFY) instead of waiting for
its next poll: intake announces in the transaction that inserts the jobs, and PostgreSQL
delivers the notice when (and only if) that transaction commits. The relay still polls,
for jobs that become due later (retries, deferrals, expired leases) and in case a notice
is lost with a dropped connection; on SQLite the embedded worker is woken in-process
instead (`Worker.wake`)."""

from __future__ import annotations

import contextlib
import threading

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from hub.logs import get_logger

CHANNEL = "hub_outbox"
_NOTIFY = text(f"NOTIFY {CHANNEL}")
log = get_logger("outbox_signal")


def announce(session: Session) -> None:
    """Tells listening relays, on commit, that ready jobs were inserted (PostgreSQL only;
    several announcements in one transaction reach a listener as one)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY)


class OutboxWakeups:
    """The relay's wait between passes: returns early when intake announced new jobs."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._conninfo = (url.set(drivername="postgresql").render_as_string(hide_password=False)
                          if url.get_backend_name() == "postgresql" else None)
        self._conn: psycopg.Connection | None = None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Up to `timeout` seconds, less if an announcement arrives (or `stop` is set
        before the wait starts)."""
        if self._conninfo is None or stop.is_set():
            stop.wait(timeout)
            return
        try:
            if self._conn is None:
                self._conn = psycopg.connect(self._conninfo, autocommit=True)
                self._conn.execute(f"LISTEN {CHANNEL}")
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                break
            for _ in self._conn.notifies(timeout=0):  # announcements of the same moment
                pass
        except psycopg.Error as exc:  # the store restarted: poll until it is back
            log.warning("outbox_listen_error", error=type(exc).__name__)
            self.close()
            stop.wait(timeout)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
