"""Frequency caps, quiet hours, collapse, dedupe: pure policy and decision, pluggable counters.

    policy = load_policy(path)                      # policy.toml, validated (PolicyError)
    limiter = PolicyLimiter(policy, SqlCounterStore(engine) | RedisCounterStore(...),
                            SqlDigestBook(engine))
    decision = limiter.check(ThrottleRequest(...))  # ALLOW / DEFER(until) / DROP(reason)
    limiter.release(request)                        # the message was not sent after all

`planning.plan` turns a request into a `Ticket` (pure); a backend executes the ticket in
one atomic step and answers an `Admission`; `planning.decide` maps it to the verdict.
"""

from throttling.backends import CounterStore, MemoryCounterStore
from throttling.decision import (
    AllowAll,
    DigestBatch,
    DigestItem,
    Limiter,
    Reason,
    ThrottleDecision,
    ThrottleRequest,
    Verdict,
    cap_reason,
)
from throttling.digest import DigestBook, MemoryDigestBook, next_digest_time
from throttling.errors import BackendError, PolicyError, ThrottlingError
from throttling.limiter import PolicyLimiter
from throttling.planning import decide, plan
from throttling.policy import CustomerOverrides, Policy, load_policy, parse_policy
from throttling.quiet_hours import QuietHours

__all__ = [
    "AllowAll",
    "BackendError",
    "CounterStore",
    "CustomerOverrides",
    "DigestBatch",
    "DigestBook",
    "DigestItem",
    "Limiter",
    "MemoryCounterStore",
    "MemoryDigestBook",
    "Policy",
    "PolicyError",
    "PolicyLimiter",
    "QuietHours",
    "Reason",
    "ThrottleDecision",
    "ThrottleRequest",
    "ThrottlingError",
    "Verdict",
    "cap_reason",
    "decide",
    "load_policy",
    "next_digest_time",
    "parse_policy",
    "plan",
]
