"""The pure decision: what a request needs from the counters (a Ticket), and the verdict
from their answer. No I/O here; backends only execute tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from throttling.decision import Reason, ThrottleDecision, ThrottleRequest, Verdict, cap_reason
from throttling.ledger import Admission, CapCheck, Outcome, ParcelStatus, Ticket
from throttling.policy import CapRule, CustomerOverrides, Policy, effective_caps
from throttling.quiet_hours import QuietHours


@dataclass(frozen=True, slots=True)
class Deferral:
    until: datetime
    reason: Reason


@dataclass(frozen=True, slots=True)
class Plan:
    """The ticket for the backend and, if the message must wait, until when and why."""

    ticket: Ticket
    deferral: Deferral | None


def is_urgent(request: ThrottleRequest, policy: Policy) -> bool:
    """True when the message may pass quiet hours and a collapse hold."""
    urgency, kind = policy.urgency, request.event_type
    if kind in urgency.never:
        return False
    if kind in urgency.always:
        return True
    if kind in urgency.near_deadline:
        return (request.deadline is not None
                and request.deadline - request.now <= urgency.deadline_within)
    return urgency.inherit and request.urgent


def quiet_hours_for(
    request: ThrottleRequest, policy: Policy, overrides: CustomerOverrides
) -> QuietHours | None:
    """The customer's quiet hours for this message, or None when none apply."""
    rule = policy.quiet_hours
    if request.category not in rule.categories or request.channel in rule.silent_channels:
        return None
    choice = overrides.quiet_hours
    if choice is not None:
        return QuietHours(choice.start, choice.end) if choice.enabled else None
    return QuietHours(rule.start, rule.end) if rule.enabled else None


def deferral_for(
    request: ThrottleRequest, policy: Policy, overrides: CustomerOverrides
) -> Deferral | None:
    """Until when a non-urgent message waits: a collapse hold, then quiet hours."""
    if is_urgent(request, policy):
        return None
    hold = policy.collapse.hold
    if (hold > timedelta(0) and request.tracking_number and request.status_rank > 0
            and request.category in policy.collapse.categories
            and request.occurred_at + hold > request.now):
        return Deferral(request.occurred_at + hold, Reason.COLLAPSE_HOLD)
    quiet = quiet_hours_for(request, policy, overrides)
    end = quiet.window_end(request.now, request.time_zone) if quiet else None
    return Deferral(end, Reason.QUIET_HOURS) if end is not None else None


def ticket_for(
    request: ThrottleRequest, rules: tuple[CapRule, ...], policy: Policy, hold: bool
) -> Ticket:
    """The backend's work for this request: its parcel status and the caps it counts against."""
    caps = tuple(
        CapCheck(rule.name, rule.scope(request.customer_id, request.channel), rule.limit,
                 int(rule.window.total_seconds() * 1000))
        for rule in rules if rule.applies(request.channel, request.category)
    )
    parcel = None
    if request.tracking_number:
        parcel = ParcelStatus(request.customer_id, request.tracking_number, request.event_type,
                              request.channel, request.status_rank,
                              request.event_type in policy.dedupe.repeatable)
    return Ticket(request.customer_id, request.token, int(request.now.timestamp() * 1000),
                  parcel, caps, hold)


def plan(request: ThrottleRequest, policy: Policy,
         overrides: CustomerOverrides | None = None) -> Plan:
    """Everything decidable without counters, and the ticket for the rest."""
    overrides = overrides or CustomerOverrides()
    deferral = deferral_for(request, policy, overrides)
    rules = effective_caps(policy, overrides)
    return Plan(ticket_for(request, rules, policy, deferral is not None), deferral)


_DROPS = {
    Outcome.STALE: Reason.STALE_STATUS,
    Outcome.SUPERSEDED: Reason.SUPERSEDED,
    Outcome.DUPLICATE: Reason.DUPLICATE,
}


def decide(planned: Plan, admission: Admission) -> ThrottleDecision:
    """The verdict from the plan and the backend's answer."""
    outcome = admission.outcome
    if outcome in _DROPS:
        return ThrottleDecision(Verdict.DROP, _DROPS[outcome])
    if outcome is Outcome.CAPPED:
        return ThrottleDecision(Verdict.DROP, cap_reason(admission.rule or "unknown"))
    if outcome is Outcome.HELD and planned.deferral is not None:
        return ThrottleDecision(Verdict.DEFER, planned.deferral.reason, planned.deferral.until)
    return ThrottleDecision(Verdict.ALLOW, Reason.WITHIN_LIMITS)
