"""How fast the pure resolver decides, and what loading a recipient from SQLite costs."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from preferences import (
    ConsentAction,
    ConsentEntry,
    EventFacts,
    Preferences,
    Profile,
    derive_state,
    resolve,
)


def bench_resolve(seconds: float = 1.5) -> float:
    profile = Profile("c-1", phone="+48512345678", email="a@example.pl", phone_verified=True)
    state = derive_state(ConsentEntry("marketing", c, ConsentAction.GRANTED,
                                      datetime.now(UTC) - timedelta(days=30), i)
                         for i, c in enumerate(("sms", "email")))
    events = [EventFacts("parcel.ready_for_pickup", "transactional", True),
              EventFacts("marketing.campaign", "marketing")]
    prefs = Preferences()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for ev in events:
            resolve(ev, profile, prefs, state)
        n += 2
    return n / (time.perf_counter() - start)


def bench_load(seconds: float = 1.5) -> float:
    from hub.consents import record_consent
    from hub.customers import get_customer, load_recipient
    from hub.db import Database
    from hub.migrate import upgrade
    from hub.models import Customer

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'b.db'}")
        upgrade(db)
        with db.transaction() as session:
            session.add(Customer(external_id="c-1", phone="+48512345678", preferences={}))
            for i in range(20):
                record_consent(session, "c-1", "marketing", "sms",
                               ConsentAction.GRANTED if i % 2 else ConsentAction.WITHDRAWN,
                               "checkout")
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            with db.sessions() as session:
                customer = get_customer(session, "default", "c-1")
                assert customer is not None
                load_recipient(session, customer, "bench-key")
            n += 1
        rate = n / (time.perf_counter() - start)
        db.dispose()
    return rate


if __name__ == "__main__":
    print(f"resolve(): {bench_resolve():,.0f} resolutions/s (pure, 3 channels each)")
    print(f"load_recipient() on SQLite, 20 ledger rows: {bench_load():,.0f} loads/s")
