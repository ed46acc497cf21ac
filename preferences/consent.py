"""The consent ledger's rows and the current state derived from them (append-only history)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# How far ahead of the hub's clock a client's `at` may be (clock skew); later is refused.
MAX_FUTURE_SKEW = timedelta(minutes=5)
# Consent evidence older than this is not plausible (and keeps `at` away from year 1).
EARLIEST_CLAIM = datetime(2000, 1, 1, tzinfo=UTC)


class Purpose(enum.StrEnum):
    MARKETING = "marketing"
    LOYALTY = "loyalty"
    PROFILING = "profiling"


class ConsentAction(enum.StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class LegalBasis(enum.StrEnum):
    CONSENT = "consent"
    CONTRACT = "contract"
    LEGITIMATE_INTEREST = "legitimate_interest"


class ConsentSource(enum.StrEnum):
    CHECKOUT = "checkout"
    PREFERENCE_CENTER = "preference_center"
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    SMS_STOP = "sms_stop"
    SUPPORT = "support"
    API = "api"


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One ledger row: a grant or a withdrawal for a purpose on a channel.

    `sequence` is the order in which the hub recorded the row (the store's row id) and is
    the only ordering key; `at` is when the client says it happened: evidence, shown and
    exported, never used to decide which entry is current.
    """

    purpose: str
    channel: str
    action: ConsentAction
    at: datetime
    sequence: int = 0
    legal_basis: str = LegalBasis.CONSENT
    source: str = ConsentSource.API
    text_version: str | None = None
    recorded_at: datetime | None = None  # the hub's clock when the row was written


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The latest action per (purpose, channel); absent means never asked."""

    latest: Mapping[tuple[str, str], ConsentAction]

    def status(self, purpose: str, channel: str) -> ConsentAction | None:
        """GRANTED, WITHDRAWN, or None when no consent was ever recorded."""
        return self.latest.get((purpose, channel))

    def granted(self, purpose: str, channel: str) -> bool:
        """True only for a current, unwithdrawn consent."""
        return self.status(purpose, channel) is ConsentAction.GRANTED


NO_CONSENTS = ConsentState({})


def derive_state(entries: Iterable[ConsentEntry]) -> ConsentState:
    """The current state: per (purpose, channel) the entry the hub recorded last wins.

    The client's `at` plays no part: a grant dated in the future must not outrank a
    withdrawal the hub records afterwards (unsubscribe, STOP, preference center).
    """
    ordered = sorted(entries, key=lambda e: e.sequence)  # stable: equal sequences keep order
    return ConsentState({(e.purpose, e.channel): e.action for e in ordered})


def check_claimed_at(at: datetime, now: datetime) -> datetime:
    """The client's `at` in UTC if plausible; ValueError when it lies more than
    MAX_FUTURE_SKEW ahead of `now`, before EARLIEST_CLAIM, or outside the calendar in UTC
    (e.g. year 1 or 9999 with an offset)."""
    if at.tzinfo is None:
        raise ValueError("the time needs a UTC offset")
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None
    if utc > now + MAX_FUTURE_SKEW:
        raise ValueError("the time lies in the future (more than 5 minutes ahead)")
    if utc < EARLIEST_CLAIM:
        raise ValueError(f"the time lies before {EARLIEST_CLAIM.date().isoformat()}")
    return utc
