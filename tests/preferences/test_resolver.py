"""The resolver's rules: one row per reason code, plus ordering, locale and tone."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from preferences import (
    NO_CONSENTS,
    ConsentAction,
    ConsentEntry,
    EventFacts,
    Frequency,
    Preferences,
    Profile,
    PushSubscription,
    QuietHours,
    RouteAction,
    SendReason,
    SkipReason,
    derive_state,
    locale_chain,
    resolve,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PICKUP = EventFacts("parcel.ready_for_pickup", "transactional", urgent=True)
IN_TRANSIT = EventFacts("parcel.in_transit", "transactional")
CAMPAIGN = EventFacts("marketing.campaign", "marketing")
POINTS = EventFacts("loyalty.points_earned", "loyalty")
FEEDBACK = EventFacts("parcel.feedback_request", "feedback")
SUB = PushSubscription("https://push.example/abc", "p" * 20, "a" * 10)
FULL = Profile("c-1", phone="+48512345678", email="a@example.pl", phone_verified=True,
               email_verified=True, push_subscriptions=(SUB,))


def consents(*rows: tuple[str, str, ConsentAction]) -> object:
    return derive_state(ConsentEntry(p, c, a, T0, i) for i, (p, c, a) in enumerate(rows))


GRANTED_ALL = derive_state(
    ConsentEntry(p, c, ConsentAction.GRANTED, T0)
    for p in ("marketing", "loyalty") for c in ("sms", "email", "push")
)


def route(resolution: object, channel: str) -> object:
    return next(r for r in resolution.routes if r.channel == channel)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("event", "profile", "prefs", "state", "enabled", "channel", "reason"),
    [
        (PICKUP, Profile("c-1", phone="+48512345678", erased=True), Preferences(), NO_CONSENTS,
         ("sms", "email", "push"), "sms", SkipReason.ERASED),
        (PICKUP, FULL, Preferences(), NO_CONSENTS, ("email",), "sms",
         SkipReason.CHANNEL_DISABLED),
        (PICKUP, FULL, Preferences(event_opt_outs=frozenset({"parcel.ready_for_pickup"})),
         NO_CONSENTS, ("sms", "email", "push"), "sms", SkipReason.OPTED_OUT_EVENT),
        (IN_TRANSIT, FULL, Preferences(frequency=Frequency.IMPORTANT), NO_CONSENTS,
         ("sms", "email", "push"), "sms", SkipReason.NOT_IN_FREQUENCY_CHOICE),
        (IN_TRANSIT, FULL, Preferences(frequency=Frequency.DIGEST), GRANTED_ALL,
         ("sms", "email", "push"), "email", SkipReason.NOT_IN_FREQUENCY_CHOICE),
        (PICKUP, FULL, Preferences(channels={"transactional": ("email",)}), NO_CONSENTS,
         ("sms", "email", "push"), "sms", SkipReason.OPTED_OUT_CHANNEL),
        (CAMPAIGN, FULL, Preferences(), NO_CONSENTS, ("sms", "email", "push"), "sms",
         SkipReason.NO_CONSENT),
        (CAMPAIGN, FULL, Preferences(),
         consents(("marketing", "sms", ConsentAction.GRANTED),
                  ("marketing", "sms", ConsentAction.WITHDRAWN)),
         ("sms", "email", "push"), "sms", SkipReason.CONSENT_WITHDRAWN),
        (POINTS, FULL, Preferences(), consents(("marketing", "email", ConsentAction.GRANTED)),
         ("sms", "email", "push"), "email", SkipReason.NO_CONSENT),
        (PICKUP, Profile("c-1", phone="+48512345678"), Preferences(), NO_CONSENTS,
         ("sms", "email", "push"), "email", SkipReason.NO_ADDRESS),
        (PICKUP, Profile("c-1"), Preferences(), NO_CONSENTS, ("sms", "email", "push"), "push",
         SkipReason.NO_ADDRESS),
        (CAMPAIGN, Profile("c-1", phone="+48512345678", phone_verified=False), Preferences(),
         GRANTED_ALL, ("sms", "email", "push"), "sms", SkipReason.ADDRESS_UNVERIFIED),
        (FEEDBACK, FULL, Preferences(channels={"feedback": ()}), NO_CONSENTS,
         ("sms", "email", "push"), "email", SkipReason.OPTED_OUT_CATEGORY),
        (EventFacts("marketing.campaign", "marketing", channels=("email",)), FULL,
         Preferences(), GRANTED_ALL, ("sms", "email", "push"), "sms",
         SkipReason.NOT_IN_CAMPAIGN),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_skip_reason(event, profile, prefs, state, enabled, channel, reason) -> None:
    r = route(resolve(event, profile, prefs, state, enabled), channel)
    assert (r.action, r.reason) == (RouteAction.SKIP, reason)
    assert r.detail  # a support agent can read why
    assert r.address is None


def test_all_skip_reasons_are_covered_above() -> None:
    covered = {
        "erased", "channel_disabled", "opted_out_event", "not_in_frequency_choice",
        "opted_out_channel", "no_consent", "consent_withdrawn", "no_address",
        "address_unverified", "opted_out_category", "not_in_campaign",
    }
    assert covered == {str(r) for r in SkipReason}


def test_a_campaign_orders_the_channels_and_consent_still_decides() -> None:
    event = EventFacts("marketing.campaign", "marketing", channels=("push", "sms"))
    state = consents(("marketing", "sms", ConsentAction.GRANTED))
    routes = resolve(event, FULL, Preferences(), state).routes
    assert [(r.channel, r.action, r.reason) for r in routes] == [
        ("inbox", RouteAction.SKIP, SkipReason.NOT_IN_CAMPAIGN),  # the copy: not asked for
        ("push", RouteAction.SKIP, SkipReason.NO_CONSENT),
        ("sms", RouteAction.SEND, "eligible"),
        ("email", RouteAction.SKIP, SkipReason.NOT_IN_CAMPAIGN),
        ("app_push", RouteAction.SKIP, SkipReason.NOT_IN_CAMPAIGN)]


def test_feedback_is_sent_without_consent_unless_the_customer_opted_out() -> None:
    """Legitimate interest: no consent and no verified address needed; every channel
    unticked (the preference center's opt-out) stops it on every channel."""
    profile = Profile("c-1", email="a@example.com", phone="+48512345678")
    sent = resolve(FEEDBACK, profile, Preferences(), NO_CONSENTS)
    assert [r.channel for r in sent.sendable] == ["email", "sms"]
    opted_out = resolve(FEEDBACK, profile, Preferences(channels={"feedback": ()}), NO_CONSENTS)
    assert opted_out.sendable == ()
    assert {r.reason for r in opted_out.routes} == {SkipReason.OPTED_OUT_CATEGORY}
    important = resolve(FEEDBACK, profile, Preferences(frequency=Frequency.IMPORTANT),
                        NO_CONSENTS)
    assert important.sendable == ()  # a survey is not an important parcel notice


def test_transactional_needs_no_consent_and_ignores_verification() -> None:
    profile = Profile("c-1", phone="+48512345678")  # unverified, no consent at all
    r = route(resolve(PICKUP, profile, Preferences(), NO_CONSENTS), "sms")
    assert (r.action, r.reason, r.address) == (RouteAction.SEND, SendReason.ELIGIBLE,
                                               "+48512345678")


def test_marketing_with_current_consent_and_verified_address_is_sent() -> None:
    state = consents(("marketing", "sms", ConsentAction.WITHDRAWN),
                     ("marketing", "sms", ConsentAction.GRANTED))
    r = route(resolve(CAMPAIGN, FULL, Preferences(), state), "sms")
    assert r.action is RouteAction.SEND


def test_urgent_notice_passes_important_only() -> None:
    prefs = Preferences(frequency=Frequency.IMPORTANT)
    assert route(resolve(PICKUP, FULL, prefs, NO_CONSENTS), "sms").action is RouteAction.SEND


def test_routes_follow_customer_order_then_the_rest() -> None:
    prefs = Preferences(channels={"transactional": ("email", "sms")})
    res = resolve(PICKUP, FULL, prefs, NO_CONSENTS)
    assert [r.channel for r in res.routes] == ["inbox", "email", "sms", "push", "app_push"]
    assert [r.channel for r in res.sendable] == ["email", "sms"]
    assert route(res, "push").reason == SkipReason.OPTED_OUT_CHANNEL


def test_email_preferred_sms_fallback_without_email() -> None:
    profile = Profile("c-1", phone="+48512345678")
    prefs = Preferences(channels={"transactional": ("email", "sms")})
    res = resolve(PICKUP, profile, prefs, NO_CONSENTS)
    assert [(r.channel, r.action, r.reason) for r in res.routes[1:3]] == [  # after the inbox
        ("email", RouteAction.SKIP, SkipReason.NO_ADDRESS),
        ("sms", RouteAction.SEND, SendReason.ELIGIBLE),
    ]


def test_push_address_is_the_subscription_json() -> None:
    import json

    address = route(resolve(PICKUP, FULL, Preferences(), NO_CONSENTS), "push").address
    assert json.loads(address) == {"endpoint": SUB.endpoint,
                                   "keys": {"p256dh": SUB.p256dh, "auth": SUB.auth}}


@pytest.mark.parametrize(("locale", "chain"), [
    ("uk", ("uk", "pl", "en")), ("de", ("de", "pl", "en")), ("pl", ("pl", "en")),
    ("en", ("en", "pl")), ("fr", ("pl", "en")),
])
def test_locale_chain(locale: str, chain: tuple[str, ...]) -> None:
    assert locale_chain(locale) == chain


def test_resolution_carries_locale_tone_and_quiet_hours() -> None:
    quiet = QuietHours(time(22), time(7))
    res = resolve(PICKUP, Profile("c-1", locale="uk", tone="informal"),
                  Preferences(quiet_hours=quiet), NO_CONSENTS)
    assert (res.locales, res.tone, res.quiet_hours) == (("uk", "pl", "en"), "informal", quiet)


def test_digest_choice_passes_marketing_on_to_the_limiter_to_hold() -> None:
    """The limiter holds it for the daily digest; the resolver must not drop it."""
    r = route(resolve(CAMPAIGN, FULL, Preferences(frequency=Frequency.DIGEST), GRANTED_ALL,
                      ("sms", "email", "push")), "email")
    assert r.action is RouteAction.SEND
