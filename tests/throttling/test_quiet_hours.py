"""Quiet hours in the customer's zone: DST changes in Europe/Warsaw, properties over any zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throttling import QuietHours

NIGHT = QuietHours(time(21, 0), time(8, 0))
WARSAW = "Europe/Warsaw"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # last Sunday of March 2026 (29th): 02:00 CET -> 03:00 CEST; 08:00 CEST = 06:00 UTC
        (utc(2026, 3, 28, 20, 0), utc(2026, 3, 29, 6, 0)),  # 21:00 CET Saturday
        (utc(2026, 3, 29, 0, 59), utc(2026, 3, 29, 6, 0)),  # 01:59 CET, just before the jump
        (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 6, 0)),  # 03:00 CEST, just after
        (utc(2026, 3, 29, 5, 59), utc(2026, 3, 29, 6, 0)),  # 07:59 CEST
        (utc(2026, 3, 29, 6, 0), None),  # 08:00 CEST: the window is over
        (utc(2026, 3, 28, 7, 0), None),  # 08:00 CET on Saturday
        (utc(2026, 3, 28, 6, 30), utc(2026, 3, 28, 7, 0)),  # 07:30 CET Saturday
        # last Sunday of October 2026 (25th): 03:00 CEST -> 02:00 CET; 08:00 CET = 07:00 UTC
        (utc(2026, 10, 24, 19, 0), utc(2026, 10, 25, 7, 0)),  # 21:00 CEST Saturday
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 7, 0)),  # 02:30 CEST (first pass)
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 7, 0)),  # 02:30 CET (second pass)
        (utc(2026, 10, 25, 6, 59), utc(2026, 10, 25, 7, 0)),  # 07:59 CET
        (utc(2026, 10, 25, 7, 0), None),
        (utc(2026, 10, 25, 19, 59), None),  # 20:59 CET Sunday
        (utc(2026, 10, 25, 20, 0), utc(2026, 10, 26, 7, 0)),  # 21:00 CET Sunday
    ],
)
def test_warsaw_night_across_dst(now: datetime, expected: datetime | None) -> None:
    assert NIGHT.window_end(now, WARSAW) == expected


def test_window_ending_inside_the_spring_gap_ends_when_clocks_jump() -> None:
    # 00:00-02:30 local; on 29 March 2026 02:30 never happens: clocks go 01:59 CET -> 03:00 CEST
    early = QuietHours(time(0, 0), time(2, 30))
    assert early.window_end(utc(2026, 3, 28, 23, 30), WARSAW) == utc(2026, 3, 29, 1, 0)
    assert early.window_end(utc(2026, 3, 29, 1, 0), WARSAW) is None  # 03:00 CEST


def test_window_ending_inside_the_autumn_repeat_ends_at_its_first_occurrence() -> None:
    early = QuietHours(time(0, 0), time(2, 30))
    assert early.window_end(utc(2026, 10, 24, 23, 0), WARSAW) == utc(2026, 10, 25, 0, 30)


def test_daytime_window_does_not_wrap() -> None:
    siesta = QuietHours(time(13, 0), time(15, 0))
    assert siesta.window_end(utc(2026, 7, 1, 11, 30), WARSAW) == utc(2026, 7, 1, 13, 0)
    assert siesta.window_end(utc(2026, 7, 1, 13, 0), WARSAW) is None


def test_unknown_zone_falls_back_to_warsaw() -> None:
    assert NIGHT.window_end(utc(2026, 3, 28, 20, 0), "Mars/Olympus") == utc(2026, 3, 29, 6, 0)


ZONES = sorted(
    z for z in available_timezones() if "/" in z and not z.startswith(("Etc", "SystemV"))
)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31),
                        timezones=st.just(UTC))
clocks = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@settings(max_examples=300, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES), start=clocks, end=clocks)
def test_deferral_lands_on_the_first_instant_outside_the_window(
    now: datetime, zone: str, start: time, end: time
) -> None:
    quiet = QuietHours(start, end)
    tz = ZoneInfo(zone)
    until = quiet.window_end(now, zone)
    inside = quiet.contains(now.astimezone(tz).time().replace(tzinfo=None))
    assert (until is not None) == inside
    if until is None:
        return
    assert until > now
    assert until - now <= timedelta(hours=26)
    assert until.tzinfo is not None and until.utcoffset() == timedelta(0)
    # the window is over at `until`, and it was still on a minute before (or at `now`)
    assert not quiet.contains(until.astimezone(tz).time().replace(tzinfo=None))
    before = max(now, until - timedelta(minutes=1))
    assert quiet.contains(before.astimezone(tz).time().replace(tzinfo=None))


@settings(max_examples=200, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES), start=clocks, end=clocks)
def test_deferral_ends_at_the_window_end_on_the_local_clock_unless_skipped(
    now: datetime, zone: str, start: time, end: time
) -> None:
    until = QuietHours(start, end).window_end(now, zone)
    if until is None:
        return
    tz = ZoneInfo(zone)
    local = until.astimezone(tz)
    if local.time().replace(tzinfo=None) != end:
        # only allowed when the end time does not exist that day (clocks sprang past it)
        naive = datetime.combine(local.date(), end)
        round_trip = naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        assert round_trip != naive
