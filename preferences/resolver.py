"""Decide, per channel, whether an event may reach the customer there (pure function)."""

from __future__ import annotations

from preferences.model import (
    DEFAULT_CHANNELS,
    SUPPORTED_LOCALES,
    Profile,
    Resolution,
    Route,
    RouteAction,
    SkipReason,
)


def locale_chain(locale: str) -> tuple[str, ...]:
    """The customer's locale followed by the fallbacks (pl, then en)."""
    chain = [locale] if locale in SUPPORTED_LOCALES else []
    return tuple(dict.fromkeys([*chain, "pl", "en"]))


def resolve(category: str, profile: Profile) -> Resolution:
    """Routes for an event of `category`: every channel in the customer's order, with a reason."""
    order = profile.channels.get(category) or DEFAULT_CHANNELS[category]
    routes = []
    for channel in order:
        address = profile.address_for(channel)
        if address is None:
            routes.append(Route(channel, RouteAction.SKIP, SkipReason.NO_ADDRESS))
        else:
            routes.append(Route(channel, RouteAction.SEND, "eligible", address))
    return Resolution(tuple(routes), locale_chain(profile.locale), profile.tone)
