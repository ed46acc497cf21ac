"""The pure parts of campaigns: local-time schedules across DST changes, the assignment's
stability and split, the Wilson interval and the z-test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.campaigns.assignment import HOLDOUT, assign
from hub.campaigns.schedule import next_local, parse_hhmm
from hub.campaigns.stats import lift, wilson


@pytest.mark.parametrize("after, zone, at, expected", [
    # before 10:00 in Warsaw (CET, +01:00): today; after it: tomorrow
    ("2026-12-01T06:00:00+00:00", "Europe/Warsaw", "10:00", "2026-12-01T09:00:00+00:00"),
    ("2026-12-01T09:30:00+00:00", "Europe/Warsaw", "10:00", "2026-12-02T09:00:00+00:00"),
    # the night clocks go forward (29 March 2026): 10:00 is CEST (+02:00) the next morning
    ("2026-03-28T12:00:00+00:00", "Europe/Warsaw", "10:00", "2026-03-29T08:00:00+00:00"),
    # 02:30 does not exist that night: moved past the gap, to 03:30 CEST
    ("2026-03-28T12:00:00+00:00", "Europe/Warsaw", "02:30", "2026-03-29T01:30:00+00:00"),
    # 02:30 happens twice on 25 October 2026: the first one (CEST)
    ("2026-10-24T12:00:00+00:00", "Europe/Warsaw", "02:30", "2026-10-25T00:30:00+00:00"),
    ("2026-12-01T06:00:00+00:00", "America/New_York", "10:00", "2026-12-01T15:00:00+00:00"),
    ("2026-12-01T06:00:00+00:00", "Not/AZone", "10:00", "2026-12-01T09:00:00+00:00"),
])
def test_next_local_time_is_dst_correct(after: str, zone: str, at: str, expected: str) -> None:
    got = next_local(parse_hhmm(at), zone, datetime.fromisoformat(after))
    assert got == datetime.fromisoformat(expected) and got.tzinfo is UTC


@pytest.mark.parametrize("bad", ["24:00", "10", "1:00", "10:60", "ab:cd"])
def test_bad_local_times_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(bad)


@given(st.text(min_size=1, max_size=40), st.integers(1, 2**31 - 1))
def test_assignment_is_a_function_of_campaign_and_customer(key: str, campaign: int) -> None:
    variants = [("a", 30), ("b", 70)]
    first = assign("seed", campaign, key, variants, 10)
    assert first == assign("seed", campaign, key, variants, 10) and first in {"a", "b", HOLDOUT}


def test_assignment_follows_weights_and_holdout() -> None:
    groups = [assign("s", 7, f"c{i}", [("a", 1), ("b", 3)], 20) for i in range(20_000)]
    share = {g: groups.count(g) / len(groups) for g in ("a", "b", HOLDOUT)}
    assert abs(share[HOLDOUT] - 0.20) < 0.01
    assert abs(share["a"] - 0.20) < 0.01 and abs(share["b"] - 0.60) < 0.01
    assert HOLDOUT not in {assign("s", 7, f"c{i}", [("a", 1)], 0) for i in range(1000)}


def test_wilson_and_z_test_match_textbook_values() -> None:
    interval = wilson(10, 100)
    assert interval is not None
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0552, 0.1744)
    assert wilson(0, 0) is None and wilson(0, 10).low == 0.0  # type: ignore[union-attr]
    versus = lift(60, 500, 40, 500)  # 12 % vs 8 %
    assert versus is not None
    assert round(versus.z, 3) == 2.108 and round(versus.p_value, 4) == 0.035
    assert round(versus.relative or 0, 2) == 0.5
    assert lift(0, 10, 0, 10) is None and lift(1, 0, 1, 10) is None
