"""One contract for every counter backend: caps, sliding windows, slot release, the parcel
ledger (stale, superseded, duplicate) and concurrency."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.throttling.conftest import backend_params
from tests.throttling.stores import make_store, ticket
from throttling import CounterStore, MemoryCounterStore
from throttling.ledger import Outcome

pytestmark = pytest.mark.parametrize(
    "location", backend_params("memory", "sqlite", "postgresql", "redis"), indirect=True
)

T0 = 1_800_000_000_000  # a fixed millisecond: windows are tested without sleeping
MIN = 60_000
ROOT = Path(__file__).resolve().parents[2]


def outcome(store: CounterStore, *args: object, **kw: object) -> str:
    admission = store.admit(ticket(*args, **kw))  # type: ignore[arg-type]
    return f"{admission.outcome}:{admission.rule}" if admission.rule else admission.outcome


def test_cap_allows_up_to_limit_then_names_the_rule(store: CounterStore) -> None:
    results = [outcome(store, f"e{i}", T0 + i, ("daily", 3, 1440 * MIN)) for i in range(5)]
    assert results == ["admitted"] * 3 + ["capped:daily"] * 2


def test_every_cap_must_have_room_and_a_full_one_takes_no_slot(store: CounterStore) -> None:
    caps = (("wide", 5, 60 * MIN), ("narrow", 1, 10 * MIN))
    assert outcome(store, "a", T0, *caps) == "admitted"
    assert outcome(store, "b", T0 + 1, *caps) == "capped:narrow"
    # b did not take a slot in `wide`: 4 more fit once `narrow` slides
    later = [outcome(store, f"c{i}", T0 + 11 * MIN * (i + 1), *caps) for i in range(5)]
    assert later == ["admitted"] * 4 + ["capped:wide"]


def test_window_slides(store: CounterStore) -> None:
    cap = ("four_hours", 1, 240 * MIN)
    assert outcome(store, "a", T0, cap) == "admitted"
    assert outcome(store, "b", T0 + 240 * MIN - 1, cap) == "capped:four_hours"
    assert outcome(store, "c", T0 + 240 * MIN, cap) == "admitted"
    assert outcome(store, "d", T0 + 300 * MIN, cap) == "capped:four_hours"


def test_release_gives_the_slot_back(store: CounterStore) -> None:
    cap = ("daily", 2, 1440 * MIN)
    assert outcome(store, "a", T0, cap) == "admitted"
    assert outcome(store, "b", T0 + 1, cap) == "admitted"
    store.release(ticket("b", T0 + 1, cap))
    assert outcome(store, "c", T0 + 2, cap) == "admitted"
    assert outcome(store, "d", T0 + 3, cap) == "capped:daily"


def test_readmitting_the_same_message_is_idempotent(store: CounterStore) -> None:
    cap = ("daily", 2, 1440 * MIN)
    assert outcome(store, "a", T0, cap) == "admitted"
    assert outcome(store, "a", T0 + 5, cap) == "admitted"  # a re-run after a crash
    assert outcome(store, "b", T0 + 6, cap) == "admitted"
    assert outcome(store, "c", T0 + 7, cap) == "capped:daily"


def test_customers_and_counters_are_separate(store: CounterStore) -> None:
    cap = ("daily", 1, 1440 * MIN)
    assert outcome(store, "a", T0, cap, customer="c-1") == "admitted"
    assert outcome(store, "b", T0, cap, customer="c-2") == "admitted"
    assert outcome(store, "c", T0, ("other", 1, MIN), customer="c-1") == "admitted"


def test_older_status_after_newer_is_stale(store: CounterStore) -> None:
    assert outcome(store, "e6", T0, parcel=("PL1", "parcel.delivered", 100)) == "admitted"
    assert outcome(store, "e3", T0 + 1, parcel=("PL1", "parcel.out_for_delivery", 30)) == "stale"
    assert outcome(store, "e9", T0 + 2, parcel=("PL2", "parcel.in_transit", 20)) == "admitted"
    assert outcome(store, "e0", T0 + 3, parcel=("PL1", "parcel.delayed", 0)) == "admitted"


def test_held_status_overtaken_by_newer_is_superseded(store: CounterStore) -> None:
    transit = ("PL1", "parcel.in_transit", 20)
    assert outcome(store, "e2", T0, parcel=transit, hold=True) == "held"
    assert outcome(store, "e3", T0 + 1, parcel=("PL1", "parcel.out_for_delivery", 30)) == "admitted"
    assert outcome(store, "e2", T0 + 2, parcel=transit) == "superseded"


def test_held_status_not_overtaken_goes_out_later(store: CounterStore) -> None:
    transit = ("PL1", "parcel.in_transit", 20)
    assert outcome(store, "e2", T0, parcel=transit, hold=True) == "held"
    assert outcome(store, "e2", T0 + 1, parcel=transit, hold=True) == "held"
    assert outcome(store, "e2", T0 + 2, parcel=transit) == "admitted"


def test_same_status_under_another_event_is_duplicate_per_channel(store: CounterStore) -> None:
    status = ("PL1", "parcel.ready_for_pickup", 50)
    assert outcome(store, "e5", T0, parcel=status) == "admitted"
    assert outcome(store, "e5", T0 + 1, parcel=status) == "admitted"  # same event: a re-run
    assert outcome(store, "e5-again", T0 + 2, parcel=status) == "duplicate"
    assert outcome(store, "e5-again", T0 + 3, parcel=status, channel="email") == "admitted"
    assert outcome(store, "r1", T0 + 4, parcel=status, repeatable=True) == "admitted"


def test_release_lets_the_status_go_out_again(store: CounterStore) -> None:
    status = ("PL1", "parcel.ready_for_pickup", 50)
    assert outcome(store, "e5", T0, parcel=status) == "admitted"
    store.release(ticket("e5", T0, parcel=status))
    assert outcome(store, "e5-again", T0 + 1, parcel=status) == "admitted"


def test_a_duplicate_or_stale_status_takes_no_cap_slot(store: CounterStore) -> None:
    cap = ("burst", 2, 60 * MIN)
    assert outcome(store, "a", T0, cap, parcel=("PL1", "parcel.delivered", 100)) == "admitted"
    assert outcome(store, "b", T0, cap, parcel=("PL1", "parcel.delivered", 100)) == "duplicate"
    assert outcome(store, "c", T0, cap, parcel=("PL1", "parcel.in_transit", 20)) == "stale"
    assert outcome(store, "d", T0, cap, parcel=("PL2", "parcel.in_transit", 20)) == "admitted"
    assert outcome(store, "e", T0, cap, parcel=("PL3", "parcel.in_transit", 20)) == "capped:burst"


def test_eight_threads_never_exceed_the_cap(store: CounterStore) -> None:
    cap = ("race", 3, 1440 * MIN)
    admitted: list[str] = []
    barrier = threading.Barrier(8)

    def race(worker: int) -> None:
        barrier.wait()
        for attempt in range(4):
            name = f"t{worker}-{attempt}"
            if store.admit(ticket(name, T0 + attempt, cap)).outcome is Outcome.ADMITTED:
                admitted.append(name)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(admitted) == 3


def test_two_processes_of_eight_threads_never_exceed_the_cap(
    location: tuple[str, str],
) -> None:
    backend, where = location
    if backend == "memory":
        pytest.skip("the in-memory store is per process by design")
    start_at = str(time.time() + 2.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.throttling.racing", backend, where,
                          start_at, f"p{i}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         text=True)
        for i in range(2)
    ]
    counts = [int(proc.communicate(timeout=120)[0].strip().splitlines()[-1]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert sum(counts) == 3, counts
    # and the store agrees: a fourth message from this process is refused
    store, close = make_store(backend, where)
    try:
        refused = store.admit(ticket("late", T0 + 10, ("race", 3, 1440 * MIN)))
        assert refused.outcome is Outcome.CAPPED
    finally:
        close()


def test_sql_purge_forgets_old_rows(location: tuple[str, str]) -> None:
    backend, where = location
    if backend not in ("sqlite", "postgresql"):
        pytest.skip("housekeeping of the SQL tables (Redis keys expire by themselves)")
    from throttling.backends.sql import SqlCounterStore

    store, close = make_store(backend, where)
    assert isinstance(store, SqlCounterStore)
    try:
        cap = ("daily", 1, 1440 * MIN)
        assert outcome(store, "a", T0, cap, parcel=("PL1", "parcel.delivered", 100)) == "admitted"
        assert store.purge(T0 + 1) == 3  # one hit, one parcel rank, one mark
        assert outcome(store, "b", T0 + 2, cap, parcel=("PL1", "parcel.delivered", 100)) == (
            "admitted")
    finally:
        close()


STATUSES = [("parcel.in_transit", 20), ("parcel.out_for_delivery", 30),
            ("parcel.delivered", 100), ("parcel.delayed", 0)]
operations = st.lists(
    st.tuples(
        st.sampled_from(["admit", "admit", "hold", "release"]),
        st.integers(0, 5),  # which message (slot owner)
        st.integers(0, 90 * MIN),  # time step
        st.sampled_from(STATUSES + [None]),
        st.sampled_from(["sms", "email"]),
    ),
    min_size=1, max_size=25,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_same_answers_as_the_reference_store(store: CounterStore, ops: list[Any]) -> None:
    reference = MemoryCounterStore()
    customer = f"c-{secrets.token_hex(4)}"  # examples share the store, not their counters
    now = T0
    caps = (("hourly", 2, 60 * MIN), ("daily", 3, 1440 * MIN))
    for action, owner, step, status, channel in ops:
        now += step
        parcel = ("PL1", *status) if status else None
        made = ticket(f"m{owner}", now, *caps, customer=customer, parcel=parcel,
                      channel=channel, hold=action == "hold")
        if action == "release":
            reference.release(made)
            store.release(made)
        else:
            assert store.admit(made) == reference.admit(made), (action, owner, status)
