"""The one interface every counter backend implements."""

from __future__ import annotations

from typing import Protocol

from throttling.ledger import Admission, Ticket


class CounterStore(Protocol):
    """Sliding-window counters and the parcel ledger, each ticket judged in one atomic step."""

    def admit(self, ticket: Ticket) -> Admission:
        """Judges the parcel status, then checks and takes every cap slot, atomically."""
        ...

    def release(self, ticket: Ticket) -> None:
        """Gives back the ticket's cap slots and its dedupe mark (the message was not sent)."""
        ...

    def close(self) -> None:
        """Frees connections."""
        ...
