"""Passes a worker or relay process runs in the background every few seconds (follow-up
timers, campaign runs), each under leases named by the loop's owner."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hub.db import Database, utcnow

Clock = Callable[[], datetime]


class PollingLoop:
    """Runs `pass_once` every `poll` seconds in a thread of its own (again at once after a
    pass that did work); a failing pass is logged and retried on the next one. `on_work`
    is called after a pass that did work (the embedded worker's wake-up)."""

    kind = "loop"  # the owner's and the thread's name
    log: Any = None  # the subclass's module logger

    def __init__(self, db: Database, poll: float = 1.0, clock: Clock = utcnow,
                 on_work: Callable[[], None] | None = None, lease_seconds: float = 60.0
                 ) -> None:
        self.db, self.poll, self.clock, self.on_work = db, poll, clock, on_work
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.kind}:{secrets.token_hex(3)}"
        self._stop = threading.Event()

    def pass_once(self) -> int:
        """One pass; how much work it did (0: nothing was due)."""
        raise NotImplementedError

    def run_once(self) -> int:
        """One pass; errors are logged and retried on the next pass."""
        try:
            done = self.pass_once()
        except Exception:
            self.log.exception(f"{self.kind}_loop_error")
            return 0
        if done and self.on_work is not None:
            self.on_work()
        return done

    def run_forever(self) -> None:
        while not self._stop.is_set():
            if not self.run_once():
                self._stop.wait(self.poll)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name=f"hub-{self.kind}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    @classmethod
    def start(cls, runtime: Any) -> Any:
        """Started for a HubRuntime (embedded worker or relay); wakes its worker."""
        worker = getattr(runtime, "worker", None)
        loop = cls(runtime.db, runtime.settings.followup_poll_seconds,
                   on_work=worker.wake if worker is not None else None,
                   lease_seconds=runtime.settings.worker_lease_seconds)
        loop.start_thread()
        return loop
