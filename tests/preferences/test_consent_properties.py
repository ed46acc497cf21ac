"""Invariants of the consent rule, checked on generated ledgers and preferences."""

from __future__ import annotations

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
entries = st.lists(
    st.builds(ConsentEntry, purposes, channels, st.sampled_from(list(ConsentAction)),
              st.integers(0, 10_000).map(lambda s: T0 + timedelta(seconds=s)),
              st.integers(0, 1_000_000)),
    max_size=30,
    unique_by=lambda e: (e.at, e.sequence),  # the store's row id makes the pair unique
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
    """Reference implementation: the newest row for the pair (ties: highest sequence)."""
    mine = [r for r in rows if (r.purpose, r.channel) == (purpose, channel)]
    return max(mine, key=lambda r: (r.at, r.sequence)).action if mine else None


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
    last = max((r.at for r in rows), default=T0) + timedelta(seconds=1)
    rows = [*rows, ConsentEntry(event.category, channel, ConsentAction.WITHDRAWN, last)]
    resolution = resolve(event, profile, preferences, derive_state(rows))
    assert channel not in {r.channel for r in resolution.sendable}


@settings(max_examples=200, deadline=None)
@given(event=consent_events, profile=profiles, preferences=prefs, rows=entries)
def test_every_channel_gets_exactly_one_route(event, profile, preferences, rows) -> None:
    resolution = resolve(event, profile, preferences, derive_state(rows))
    assert sorted(r.channel for r in resolution.routes) == sorted(CHANNELS)
    assert all(r.action in (RouteAction.SEND, RouteAction.SKIP) for r in resolution.routes)
