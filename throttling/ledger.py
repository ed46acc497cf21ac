"""What a counter backend is asked to do atomically (a Ticket) and what it answers (an Admission).

The rules for the parcel ledger live here as pure functions, so the in-memory and SQL
backends share them; the Redis backend mirrors them in its Lua script and the contract
tests hold all three to the same behaviour.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

# A parcel's ledger (and every counter) is forgotten this long after it was last touched.
LEDGER_RETENTION = timedelta(days=45)


class Outcome(enum.StrEnum):
    """The backend's answer to one ticket."""

    ADMITTED = "admitted"
    HELD = "held"
    CAPPED = "capped"
    STALE = "stale"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"


class MarkState(enum.StrEnum):
    """A parcel status on one channel: waiting (deferred) or taken (reserved/sent)."""

    HELD = "held"
    SENT = "sent"


@dataclass(frozen=True, slots=True)
class CapCheck:
    """One sliding-window counter to check and increment."""

    rule: str
    scope: str
    limit: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class ParcelStatus:
    """The parcel status a message announces, for staleness, collapse and dedupe."""

    customer_id: str
    tracking_number: str
    status: str
    channel: str
    rank: int
    repeatable: bool = False


@dataclass(frozen=True, slots=True)
class Ticket:
    """One atomic step: judge the parcel status, then check and take every cap slot.

    With `hold` the message is only being deferred: its status is recorded as waiting and
    no cap slot is taken.
    """

    customer_id: str
    token: str
    now_ms: int
    parcel: ParcelStatus | None
    caps: tuple[CapCheck, ...]
    hold: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    """The backend's answer; `rule` names the cap that was full."""

    outcome: Outcome
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    state: MarkState
    owner: str


def judge_parcel(ticket: Ticket, max_rank: int, mark: Mark | None) -> Outcome | None:
    """Stale, superseded or duplicate given the parcel's highest rank and this status's mark;
    None when the message may go on to the caps."""
    parcel = ticket.parcel
    if parcel is None:
        return None
    if parcel.rank > 0 and parcel.rank < max_rank:
        held = mark is not None and mark.state is MarkState.HELD
        return Outcome.SUPERSEDED if held else Outcome.STALE
    if (
        mark is not None
        and mark.state is MarkState.SENT
        and mark.owner != ticket.token
        and not parcel.repeatable
    ):
        return Outcome.DUPLICATE
    return None


def next_mark(ticket: Ticket, current: Mark | None) -> Mark | None:
    """The mark to store after the ticket passed the parcel checks (None: leave as is)."""
    if ticket.hold:
        if current is not None and current.state is MarkState.SENT:
            return None
        return Mark(MarkState.HELD, ticket.token)
    return Mark(MarkState.SENT, ticket.token)


def window_start(ticket: Ticket, cap: CapCheck) -> int:
    """Hits at or before this millisecond no longer count against `cap`."""
    return ticket.now_ms - cap.window_ms
