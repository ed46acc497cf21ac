"""The limiter the pipeline calls: the pure plan, one atomic backend step, the pure verdict."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from throttling.backends.base import CounterStore
from throttling.decision import (
    DigestItem,
    Reason,
    ThrottleDecision,
    ThrottleRequest,
    Verdict,
)
from throttling.digest import DigestBook, MemoryDigestBook, next_digest_time
from throttling.errors import PolicyError
from throttling.ledger import LEDGER_RETENTION
from throttling.planning import decide, plan
from throttling.policy import CustomerOverrides, Policy

log = logging.getLogger(__name__)


class PolicyLimiter:
    """Applies a Policy with counters kept in `store` and digest items kept in `digests`."""

    def __init__(self, policy: Policy, store: CounterStore,
                 digests: DigestBook | None = None) -> None:
        self.policy = policy
        self.store = store
        self.digests: DigestBook = digests if digests is not None else MemoryDigestBook()

    def _overrides(self, request: ThrottleRequest) -> CustomerOverrides:
        try:
            return CustomerOverrides.from_mapping(request.overrides)
        except PolicyError as exc:
            # A bad preference must not block the customer's parcel notices: policy defaults.
            log.warning("throttle_overrides_ignored customer=%s: %s", request.customer_id, exc)
            return CustomerOverrides()

    def digest_hour(self, request: ThrottleRequest, overrides: CustomerOverrides) -> int | None:
        """The customer's digest hour if this message belongs in their daily digest."""
        choice = overrides.digest
        if choice is None or not choice.enabled:
            return None
        if request.category not in choice.categories:
            return None
        if request.category not in self.policy.digest.categories:
            return None
        return choice.hour if choice.hour is not None else self.policy.digest.default_hour

    def purge(self, now: datetime) -> int:
        """Housekeeping: forgets counters and parcel statuses untouched for LEDGER_RETENTION
        (Redis expires them by itself); returns how many rows went."""
        purge = getattr(self.store, "purge", None)
        if purge is None:
            return 0
        return int(purge(int((now - LEDGER_RETENTION).timestamp() * 1000)))

    def export(self, customer_id: str) -> dict[str, Any]:
        """What a backend outside the hub's database (Redis) keeps for the customer; the SQL
        backend's rows are exported with the rest of the store."""
        export = getattr(self.store, "export", None)
        return dict(export(customer_id)) if export is not None else {}

    def forget(self, customer_id: str) -> int:
        """Erasure: the backend and the digest book drop everything kept for the customer
        (pass the pseudonymous key the requests used); returns how many entries went."""
        gone = 0
        for part in (self.store, self.digests):
            forget = getattr(part, "forget", None)
            if forget is not None:
                gone += int(forget(customer_id))
        return gone

    def check(self, request: ThrottleRequest) -> ThrottleDecision:
        """Allows (taking the cap slots), defers until an instant, or drops with a reason."""
        overrides = self._overrides(request)
        hour = self.digest_hour(request, overrides)
        if hour is not None:
            return self._digest(request, hour)
        planned = plan(request, self.policy, overrides)
        return decide(planned, self.store.admit(planned.ticket))

    def release(self, request: ThrottleRequest) -> None:
        """Gives back what `check` took for a message that ends up not sent."""
        overrides = self._overrides(request)
        if self.digest_hour(request, overrides) is not None:
            self.digests.give_back(request.customer_id, _digest_ref(request))
            return
        planned = plan(request, self.policy, overrides)
        self.store.release(dataclasses.replace(planned.ticket, hold=False))

    def _digest(self, request: ThrottleRequest, hour: int) -> ThrottleDecision:
        ref = _digest_ref(request)
        item = DigestItem(ref, request.event_type, request.category, request.occurred_at,
                          dict(request.summary))
        due = self.digests.hold(request.customer_id, item,
                                next_digest_time(request.now, hour, request.time_zone))
        if due > request.now:
            return ThrottleDecision(Verdict.DEFER, Reason.DIGEST_HELD, due)
        gathered = self.digests.confirm(request.customer_id, ref, request.now) + (
            self.policy.digest.gather)
        if gathered > request.now:
            return ThrottleDecision(Verdict.DEFER, Reason.DIGEST_HELD, gathered)
        batch = self.digests.take(request.customer_id, ref, request.now)
        if batch is None:
            return ThrottleDecision(Verdict.DROP, Reason.DIGEST_MERGED)
        return ThrottleDecision(Verdict.ALLOW, Reason.DIGEST_RELEASE,
                                digest=dataclasses.replace(batch, channel=request.channel))

    def close(self) -> None:
        """Frees the backend's connections."""
        self.store.close()


def _digest_ref(request: ThrottleRequest) -> str:
    return request.event_ref or request.token.rsplit("|", 1)[0]
