"""One process at a time runs a loop that needs only one: a lease row its holder renews.

Every `hub serve` and `hub worker` in scale-out mode has an outbox relay, so that any of
them can die without jobs waiting for a person. Polling the outbox from all of them at once
costs a claim transaction per relay every poll and splits the ready jobs into smaller
messages; with one active relay the others only look at the lease now and then and take
over when its holder stops renewing it (at once when it stops gracefully: it hands the lease
back). Leadership is an economy, not a fence: two holders at once (a paused process, clock
skew between hosts) are harmless, because every job is claimed under its own lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, update

from hub.db import Database, insert_ignoring, utcnow
from hub.logs import get_logger
from hub.models import SingletonLease

log = get_logger("leadership")


class Leadership:
    """`held()` says whether `owner` holds the lease `name` now; it looks at the store at
    most every third of the lease while holding it (renewing it), and every
    `standby_seconds` while not."""

    def __init__(self, db: Database, name: str, owner: str, lease_seconds: float,
                 standby_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db, self.name, self.owner = db, name, owner
        self.lease_seconds, self.standby_seconds, self.clock = lease_seconds, standby_seconds, clock
        self._held = False
        self._next_look = 0.0

    def held(self) -> bool:
        now = self.clock()
        if now < self._next_look:
            return self._held
        try:
            taken = self._take()
        except Exception as exc:  # store unreachable: nobody can relay; look again soon
            log.warning("lease_check_failed", lease=self.name, error=type(exc).__name__)
            self._held, self._next_look = False, now + self.standby_seconds
            return False
        if taken != self._held:
            log.info("lease_taken" if taken else "lease_lost", lease=self.name, owner=self.owner)
        self._held = taken
        self._next_look = now + (self.lease_seconds / 3 if taken else self.standby_seconds)
        return taken

    def _take(self) -> bool:
        """Renews the lease if ours, takes it if free or expired; True when ours."""
        now = utcnow()
        with self.db.transaction() as session:
            insert_ignoring(session, SingletonLease, [{"name": self.name}], ["name"])
            won = session.scalars(
                update(SingletonLease)
                .where(SingletonLease.name == self.name,
                       or_(SingletonLease.owner == self.owner, SingletonLease.owner.is_(None),
                           SingletonLease.until < now))
                .values(owner=self.owner, until=now + timedelta(seconds=self.lease_seconds))
                .returning(SingletonLease.name)).first()
        return won is not None

    def step_down(self, seconds: float) -> None:
        """Hands the lease back and stays out of the race for `seconds`: a holder that
        cannot do the work (its broker unreachable from here) lets a healthy process lead."""
        self.release()
        self._next_look = self.clock() + seconds

    def release(self) -> None:
        """Hands the lease back (graceful stop), so another process takes over at once."""
        self._held, self._next_look = False, 0.0
        try:
            with self.db.transaction() as session:
                session.execute(update(SingletonLease)
                                .where(SingletonLease.name == self.name,
                                       SingletonLease.owner == self.owner)
                                .values(owner=None, until=None))
        except Exception as exc:  # it expires by itself
            log.warning("lease_release_failed", lease=self.name, error=type(exc).__name__)
