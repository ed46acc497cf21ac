"""The consent ledger's rows and the current state derived from them (append-only history)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


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
    """One ledger row: a grant or a withdrawal for a purpose on a channel."""

    purpose: str
    channel: str
    action: ConsentAction
    at: datetime
    sequence: int = 0  # tie-breaker for equal timestamps: the later-written row wins
    legal_basis: str = LegalBasis.CONSENT
    source: str = ConsentSource.API
    text_version: str | None = None


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
    """The current state: per (purpose, channel) the entry with the latest time wins."""
    ordered = sorted(entries, key=lambda e: (e.at, e.sequence))
    return ConsentState({(e.purpose, e.channel): e.action for e in ordered})
