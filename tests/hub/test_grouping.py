"""Group commit (`hub.grouping.Grouped`): callers that arrive while a group runs share the
next one; each caller returns only after the group holding its item ran, and a group's
failure is each of its callers' failure and nobody else's."""

from __future__ import annotations

import threading
import time

import pytest

from hub.grouping import Grouped


def _call_all(grouped: Grouped[int], items: list[int]) -> dict[int, BaseException | None]:
    outcome: dict[int, BaseException | None] = {}
    lock = threading.Lock()

    def call(item: int) -> None:
        try:
            grouped(item)
            error = None
        except Exception as exc:
            error = exc
        with lock:
            outcome[item] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
        time.sleep(0.002)  # arrive while the first group runs
    for t in threads:
        t.join(timeout=10)
    return outcome


def test_callers_arriving_during_a_run_share_the_next_group() -> None:
    groups: list[list[int]] = []

    def run(items: list[int]) -> None:
        groups.append(items)
        time.sleep(0.05)

    outcome = _call_all(Grouped(run), list(range(8)))
    assert outcome == {i: None for i in range(8)}
    assert sorted(i for g in groups for i in g) == list(range(8))  # each item ran once
    assert groups[0] == [0]  # the first caller runs alone, at once
    assert len(groups) < 8 and max(len(g) for g in groups) > 1


def test_a_lone_caller_runs_at_once() -> None:
    ran: list[list[int]] = []
    Grouped(ran.append)(7)
    assert ran == [[7]]


def test_groups_stay_within_max_size() -> None:
    groups: list[list[int]] = []

    def run(items: list[int]) -> None:
        groups.append(items)
        time.sleep(0.03)

    _call_all(Grouped(run, size=lambda i: 2, max_size=5), list(range(10)))
    assert all(len(g) * 2 <= 5 for g in groups)  # two items (size 4) at most per group
    assert sorted(i for g in groups for i in g) == list(range(10))


def test_a_failing_group_fails_its_callers_only() -> None:
    def run(items: list[int]) -> None:
        time.sleep(0.03)
        if 3 in items:
            raise RuntimeError(f"store down for {items}")

    outcome = _call_all(Grouped(run, max_size=2), list(range(6)))
    failed = {i for i, error in outcome.items() if error is not None}
    assert 3 in failed and len(failed) <= 2  # 3 and at most its one group neighbour
    assert all(isinstance(outcome[i], RuntimeError) for i in failed)


def test_an_error_reaches_a_lone_caller() -> None:
    def run(items: list[int]) -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError):
        Grouped(run)(1)
