"""Customer profiles, preferences, consent and the resolver (pure: no I/O)."""

from preferences.addresses import (
    AddressError,
    AddressProblem,
    check_locale,
    check_time_zone,
    normalize_phone,
)
from preferences.consent import (
    NO_CONSENTS,
    ConsentAction,
    ConsentEntry,
    ConsentSource,
    ConsentState,
    LegalBasis,
    Purpose,
    check_claimed_at,
    derive_state,
)
from preferences.model import (
    CATEGORIES,
    CHANNELS,
    COPY_CHANNELS,
    SUPPORTED_LOCALES,
    AppDevice,
    EventFacts,
    Frequency,
    Preferences,
    Profile,
    PushSubscription,
    QuietHours,
    Resolution,
    Route,
    RouteAction,
    SendReason,
    SkipReason,
)
from preferences.resolver import locale_chain, resolve
from preferences.stored import preferences_from_json, preferences_to_json

__all__ = [
    "CATEGORIES", "CHANNELS", "COPY_CHANNELS", "NO_CONSENTS", "SUPPORTED_LOCALES", "AddressError",
    "AddressProblem", "AppDevice", "ConsentAction", "ConsentEntry", "ConsentSource", "ConsentState",
    "EventFacts", "Frequency", "LegalBasis", "Preferences", "Profile", "PushSubscription",
    "Purpose", "QuietHours", "Resolution", "Route", "RouteAction", "SendReason", "SkipReason",
    "check_claimed_at", "check_locale", "check_time_zone",
    "derive_state", "locale_chain", "normalize_phone",
    "preferences_from_json", "preferences_to_json", "resolve",
]
