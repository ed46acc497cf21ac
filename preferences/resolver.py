"""Decide, per channel, whether an event may reach the customer there (pure function)."""

from __future__ import annotations

from collections.abc import Collection

from preferences.consent import ConsentAction, ConsentState
from preferences.model import (
    CHANNELS,
    CONSENT_CATEGORIES,
    COPY_CHANNELS,
    FALLBACK_LOCALES,
    OPT_OUT_CATEGORIES,
    SUPPORTED_LOCALES,
    EventFacts,
    Frequency,
    Preferences,
    Profile,
    Resolution,
    Route,
    RouteAction,
    SendReason,
    SkipReason,
)


def locale_chain(locale: str) -> tuple[str, ...]:
    """The customer's locale followed by the fallbacks (pl, then en)."""
    chain = [locale] if locale in SUPPORTED_LOCALES else []
    return tuple(dict.fromkeys([*chain, *FALLBACK_LOCALES]))


def channel_order(category: str, preferences: Preferences,
                  requested: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Copy channels (the inbox) first, then the customer's channels for the category (a
    campaign's own order instead, when `requested`), then every other channel (to explain).
    The inbox copy is written before the notification goes out, so a tapped notification
    opens onto an inbox that already holds the message, and a batch's statuses reach the
    inbox in the order they were decided."""
    chosen = requested if requested is not None else preferences.order_for(category)
    ordered = tuple(dict.fromkeys([*(c for c in chosen if c in CHANNELS), *CHANNELS]))
    return (*(c for c in ordered if c in COPY_CHANNELS),
            *(c for c in ordered if c not in COPY_CHANNELS))


def resolve(
    event: EventFacts,
    profile: Profile,
    preferences: Preferences,
    consents: ConsentState,
    enabled_channels: Collection[str] = CHANNELS,
) -> Resolution:
    """Routes for the event: every channel in the customer's order, each `send` or `skip`
    with a reason. Transactional notices need no consent (delivery contract) but honour
    opt-outs; loyalty and marketing need a current consent for that purpose and channel."""
    chosen = preferences.order_for(event.category)
    routes = tuple(
        _route(channel, event, profile, preferences, consents, channel in chosen,
               channel in enabled_channels)
        for channel in channel_order(event.category, preferences, event.channels)
    )
    return Resolution(routes, locale_chain(profile.locale), profile.tone, preferences.quiet_hours)


def _route(
    channel: str,
    event: EventFacts,
    profile: Profile,
    preferences: Preferences,
    consents: ConsentState,
    chosen: bool,
    enabled: bool,
) -> Route:
    reason = _skip_reason(channel, event, profile, preferences, consents, chosen, enabled)
    if reason is not None:
        return Route(channel, RouteAction.SKIP, reason, detail=_DETAILS.get(reason))
    return Route(channel, RouteAction.SEND, SendReason.ELIGIBLE, profile.address_for(channel))


def _skip_reason(
    channel: str,
    event: EventFacts,
    profile: Profile,
    preferences: Preferences,
    consents: ConsentState,
    chosen: bool,
    enabled: bool,
) -> SkipReason | None:
    """The first rule that stops this channel, in the order a support agent would check."""
    if profile.erased:
        return SkipReason.ERASED
    if not enabled:
        return SkipReason.CHANNEL_DISABLED
    if event.type in preferences.event_opt_outs:
        return SkipReason.OPTED_OUT_EVENT
    if event.category in OPT_OUT_CATEGORIES and not preferences.order_for(event.category):
        return SkipReason.OPTED_OUT_CATEGORY  # legitimate interest: every channel unticked
    if not _in_frequency_choice(preferences.frequency, event):
        return SkipReason.NOT_IN_FREQUENCY_CHOICE
    if not chosen:
        return SkipReason.OPTED_OUT_CHANNEL
    if event.channels is not None and channel not in event.channels:
        return SkipReason.NOT_IN_CAMPAIGN
    needs_consent = event.category in CONSENT_CATEGORIES
    if needs_consent:
        status = consents.status(event.category, channel)
        if status is None:
            return SkipReason.NO_CONSENT
        if status is ConsentAction.WITHDRAWN:
            return SkipReason.CONSENT_WITHDRAWN
    if profile.address_for(channel) is None:
        return SkipReason.NO_ADDRESS
    if needs_consent and not profile.verified(channel):
        return SkipReason.ADDRESS_UNVERIFIED
    return None


def _in_frequency_choice(frequency: Frequency, event: EventFacts) -> bool:
    """"Important only" passes urgent parcel notices; "digest" also passes loyalty and
    marketing, which the limiter holds for the customer's daily digest."""
    if frequency is Frequency.ALL or _important(event):
        return True
    return frequency is Frequency.DIGEST and event.category in CONSENT_CATEGORIES


def _important(event: EventFacts) -> bool:
    """Only urgent parcel notices pass the "important only" and "digest" choices at once."""
    return event.category == "transactional" and event.urgent


_DETAILS: dict[SkipReason, str] = {
    SkipReason.ERASED: "the customer's data was erased on request",
    SkipReason.CHANNEL_DISABLED: "this channel is not enabled on the hub",
    SkipReason.OPTED_OUT_EVENT: "the customer opted out of this event type",
    SkipReason.OPTED_OUT_CATEGORY: "the customer opted out of this kind of message (e.g. "
    "delivery feedback requests)",
    SkipReason.NOT_IN_FREQUENCY_CHOICE: "the customer chose important updates only (or a "
    "digest, which leaves out non-urgent parcel updates)",
    SkipReason.OPTED_OUT_CHANNEL: "the customer did not choose this channel for the category",
    SkipReason.NO_CONSENT: "no consent recorded for this purpose and channel",
    SkipReason.CONSENT_WITHDRAWN: "the customer withdrew consent for this purpose and channel",
    SkipReason.NO_ADDRESS: "no address for this channel in the profile",
    SkipReason.ADDRESS_UNVERIFIED: "consent-based messages need a verified address",
    SkipReason.NOT_IN_CAMPAIGN: "the campaign does not send on this channel",
}
