"""Invariants of the sliding-window caps over random traffic (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.throttling.stores import ticket
from throttling import MemoryCounterStore
from throttling.ledger import Outcome

WINDOW = 1000


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(0, 5),
    steps=st.lists(st.tuples(st.integers(0, 400), st.booleans()), min_size=1, max_size=60),
)
def test_never_more_than_the_limit_in_any_window(
    limit: int, steps: list[tuple[int, bool]]
) -> None:
    store = MemoryCounterStore()
    now, live = 0, []  # admission times of slots still held
    for n, (gap, give_back) in enumerate(steps):
        now += gap
        request = ticket(f"m{n}", now, ("cap", limit, WINDOW))
        in_window = [at for at in live if at > now - WINDOW]
        admitted = store.admit(request).outcome is Outcome.ADMITTED
        # allowed exactly when the window had room
        assert admitted == (len(in_window) < limit)
        if admitted and give_back:
            store.release(request)
        elif admitted:
            live.append(now)
        assert len([at for at in live if at > now - WINDOW]) <= limit
