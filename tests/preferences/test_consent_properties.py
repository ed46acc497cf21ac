"""Invariants of the consent rule, checked on generated ledgers and preferences.

The ledger is ordered by the hub's recording sequence; the client's `at` (generated here
anywhere from 1990 to 2099, far future included) is evidence and never decides the state.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from preferences import (
    CHANNELS,
    ConsentAction,
    ConsentEntry,
    EventFacts,
    Frequency,
    Preferences,
    Profile,
    RouteAction,
    derive_state,
    resolve,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
purposes = st.sampled_from(["marketing", "loyalty", "profiling"])
channels = st.sampled_from(CHANNELS)
claimed = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31),
                       timezones=st.just(UTC))
entries = st.lists(
    st.builds(ConsentEntry, purposes, channels, st.sampled_from(list(ConsentAction)),
              claimed, st.integers(0, 1_000_000)),
    max_size=30,
    unique_by=lambda e: e.sequence,  # the store's row id
)
profiles = st.builds(
    Profile, customer_id=st.just("c-1"),
    phone=st.none() | st.just("+48512345678"), email=st.none() | st.just("a@example.pl"),
    phone_verified=st.booleans(), email_verified=st.booleans(),
    locale=st.sampled_from(["pl", "en", "uk", "de", "fr"]), erased=st.booleans(),
)
orders = st.lists(channels, unique=True).map(tuple)
prefs = st.builds(
    Preferences,
    channels=st.fixed_dictionaries({"transactional": orders, "marketing": orders,
                                    "loyalty": orders}),
    event_opt_outs=st.frozensets(st.sampled_from(["marketing.campaign", "parcel.in_transit"])),
    frequency=st.sampled_from(list(Frequency)),
)
consent_events = st.sampled_from([
    EventFacts("marketing.campaign", "marketing"),
    EventFacts("loyalty.points_earned", "loyalty"),
    EventFacts("loyalty.tier_reached", "loyalty"),
])


def latest(rows: list[ConsentEntry], purpose: str, channel: str) -> ConsentAction | None:
    """Reference implementation: the row the hub recorded last for the pair."""
    mine = [r for r in rows if (r.purpose, r.channel) == (purpose, channel)]
    return max(mine, key=lambda r: r.sequence).action if mine else None


@settings(max_examples=300, deadline=None)
@given(event=consent_events, profile=profiles, preferences=prefs, rows=entries)
def test_no_consent_message_is_sent_without_a_current_consent(event, profile, preferences,
                                                              rows) -> None:
    resolution = resolve(event, profile, preferences, derive_state(rows))
    for route in resolution.sendable:
        assert latest(rows, event.category, route.channel) is ConsentAction.GRANTED
        assert route.address is not None


@settings(max_examples=200, deadline=None)
@given(rows=entries, purpose=purposes, channel=channels)
def test_derived_state_is_the_newest_row_in_any_order(rows, purpose, channel) -> None:
    assert derive_state(rows).status(purpose, channel) == latest(rows, purpose, channel)
    assert derive_state(reversed(rows)).status(purpose, channel) == latest(rows, purpose,
                                                                          channel)


@settings(max_examples=200, deadline=None)
@given(event=consent_events, profile=profiles, preferences=prefs, rows=entries,
       channel=channels)
def test_a_withdrawal_after_every_grant_stops_that_channel(event, profile, preferences, rows,
                                                           channel) -> None:
    # recorded after every other row, but claiming the earliest time of all
    after = max((r.sequence for r in rows), default=0) + 1
    rows = [*rows, ConsentEntry(event.category, channel, ConsentAction.WITHDRAWN,
                                datetime(1990, 1, 1, tzinfo=UTC), after)]
    resolution = resolve(event, profile, preferences, derive_state(rows))
    assert channel not in {r.channel for r in resolution.sendable}


@settings(max_examples=200, deadline=None)
@given(event=consent_events, profile=profiles, preferences=prefs, rows=entries)
def test_every_channel_gets_exactly_one_route(event, profile, preferences, rows) -> None:
    resolution = resolve(event, profile, preferences, derive_state(rows))
    assert sorted(r.channel for r in resolution.routes) == sorted(CHANNELS)
    assert all(r.action in (RouteAction.SEND, RouteAction.SKIP) for r in resolution.routes)


@settings(max_examples=200, deadline=None)
@given(rows=entries, times=st.lists(claimed, min_size=30, max_size=30))
def test_the_claimed_time_never_changes_the_state(rows, times) -> None:
    redated = [dataclasses.replace(r, at=t) for r, t in zip(rows, times, strict=False)]
    assert derive_state(redated).latest == derive_state(rows).latest


def test_a_grant_dated_2099_loses_to_a_later_recorded_withdrawal() -> None:
    future = ConsentEntry("marketing", "email", ConsentAction.GRANTED,
                          datetime(2099, 1, 1, tzinfo=UTC), 1)
    withdrawal = ConsentEntry("marketing", "email", ConsentAction.WITHDRAWN,
                              T0 + timedelta(minutes=1), 2)
    assert derive_state([withdrawal, future]).status("marketing", "email") is (
        ConsentAction.WITHDRAWN)
