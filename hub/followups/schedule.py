"""Creating and cancelling timers inside the intake transaction: an accepted event never
loses its timers, and a later event that makes them moot cancels them atomically."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.customers import customer_key, tombstone_key
from hub.db import utcnow
from hub.followups.rules import Rule, Scope, active_rules
from hub.logs import get_logger
from hub.models import Event, FollowupTimer
from hub.settings import get_settings

log = get_logger("followups")


class TimerState(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    FIRED = "fired"
    SKIPPED = "skipped"
    FAILED = "failed"


class TimerReason(enum.StrEnum):
    """Why a timer was cancelled or skipped."""

    TOO_LATE = "too_late"  # its fire time had passed when it was due to be scheduled/fired
    NO_ANCHOR = "no_anchor"  # the event lacks the field the offsets count from
    MOOT = "moot"  # a later event of the scope made it pointless (delivered, points used)
    REPLACED = "replaced"  # a newer trigger with other key fields scheduled its own
    DUPLICATE = "duplicate"  # a newer trigger with the same key fields: the earlier stand
    STALE = "stale"  # an older trigger arrived after a newer one
    ONCE_PER_CUSTOMER = "once_per_customer"  # the rule's per-customer window is used up
    ERASED = "erased"  # the customer was erased before it fired
    INVALID = "invalid"  # the follow-up event would not pass intake validation


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event just inserted by intake (its row values and primary key)."""

    pk: int
    row: dict[str, Any]


def lookup(payload: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path of a payload, or None."""
    node: Any = payload
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def anchor_of(payload: dict[str, Any], rule: Rule) -> datetime | None:
    """The instant the rule's offsets count from (None when absent or unparseable)."""
    value = lookup(payload, rule.at)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def match_key(payload: dict[str, Any], rule: Rule) -> str:
    """A digest of the fields whose change makes a newer trigger replace the timers."""
    values = [lookup(payload, path) for path in rule.replace_when_changed]
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def on_intake(session: Session, accepted: Sequence[Accepted], now: datetime | None = None
              ) -> None:
    """The intake hook: cancels timers the new events make moot, then schedules the new
    events' own timers, in the caller's transaction."""
    rules = active_rules()
    if not rules or not accepted:
        return
    now = now or utcnow()
    key = tombstone_key(get_settings())
    for item in accepted:
        ctx = _Ctx(session, item, key)
        for rule in rules:
            if item.row["type"] in rule.cancel_on:
                _cancel_moot(ctx, rule)
            if item.row["type"] == rule.on:
                _schedule(ctx, rule, now)


@dataclass(frozen=True, slots=True)
class _Ctx:
    session: Session
    item: Accepted
    erasure_key: str

    @property
    def cust_key(self) -> str:
        row = self.item.row
        return customer_key(self.erasure_key, row["tenant"], row["customer_id"])

    def scope_value(self, rule: Rule) -> str | None:
        if rule.scope is Scope.PARCEL:
            tracking: str | None = self.item.row["tracking_number"]
            return tracking
        return self.cust_key


def _open_timers(ctx: _Ctx, rule: Rule, scope_value: str) -> list[FollowupTimer]:
    return list(ctx.session.scalars(select(FollowupTimer).where(
        FollowupTimer.tenant == ctx.item.row["tenant"], FollowupTimer.rule == rule.name,
        FollowupTimer.scope_value == scope_value,
        FollowupTimer.state == TimerState.SCHEDULED)))


def _cancels(rule: Rule, later: dict[str, Any], trigger: dict[str, Any] | None) -> bool:
    """Whether a later event of `cancel_on` makes the trigger's timers moot."""
    if rule.cancel_if is None:
        return True
    value, limit = lookup(later, rule.cancel_if.field), (
        lookup(trigger, rule.cancel_if.below_trigger) if trigger else None)
    numbers = (int, float)
    return isinstance(value, numbers) and isinstance(limit, numbers) and value < limit


def _cancel_moot(ctx: _Ctx, rule: Rule) -> None:
    scope_value = ctx.scope_value(rule)
    if scope_value is None:
        return
    row = ctx.item.row
    for timer in _open_timers(ctx, rule, scope_value):
        if timer.trigger_occurred_at > row["occurred_at"]:
            continue  # the later event is older than the trigger: it cannot answer it
        trigger = ctx.session.get(Event, timer.trigger_event_pk)
        if not _cancels(rule, row["payload"], trigger.payload if trigger else None):
            continue
        _resolve(timer, TimerState.CANCELLED, TimerReason.MOOT, ctx.item,
                 f"{row['type']} {row['event_id']}")


def _resolve(timer: FollowupTimer, state: TimerState, reason: TimerReason,
             by: Accepted | None, detail: str) -> None:
    timer.state, timer.reason, timer.detail = state, reason, detail
    timer.resolved_by_event_pk = by.pk if by else None
    timer.lease_owner = timer.lease_until = None
    log.info("followup_timer", timer=timer.id, rule=timer.rule, offset=timer.offset,
             state=str(state), reason=str(reason))


def _schedule(ctx: _Ctx, rule: Rule, now: datetime) -> None:
    row, scope_value = ctx.item.row, ctx.scope_value(rule)
    anchor = (row["occurred_at"] if rule.at == "occurred_at"
              else anchor_of(row["payload"], rule))
    plan = [(o, (anchor or row["occurred_at"]) + o.delta) for o in rule.offsets]
    verdict = _blocked(ctx, rule, scope_value, anchor)
    if verdict is None and scope_value is not None:
        verdict = _supersede(ctx, rule, scope_value)
    if verdict is None and rule.once_per_customer_days:
        verdict = _window_used(ctx, rule, min(at for _, at in plan))
    for offset, fire_at in plan:
        reason, detail = verdict or (None, None)
        if reason is None and fire_at <= now:
            reason, detail = TimerReason.TOO_LATE, f"fire time {fire_at.isoformat()} passed"
        timer = FollowupTimer(
            tenant=row["tenant"], rule=rule.name, offset=offset.text,
            trigger_event_pk=ctx.item.pk, trigger_occurred_at=row["occurred_at"],
            scope_value=scope_value or "", customer_key=ctx.cust_key,
            match_key=match_key(row["payload"], rule), send_type=rule.send, fire_at=fire_at,
            anchor_at=anchor, state=TimerState.SKIPPED if reason else TimerState.SCHEDULED,
            reason=reason, detail=detail)
        ctx.session.add(timer)
        ctx.session.flush()
        log.info("followup_timer", timer=timer.id, rule=rule.name, offset=offset.text,
                 state=timer.state, reason=reason, fire_at=fire_at.isoformat())


def _blocked(ctx: _Ctx, rule: Rule, scope_value: str | None, anchor: datetime | None
             ) -> tuple[TimerReason, str] | None:
    """No anchor, or an event already recorded that makes the new timers moot."""
    if anchor is None:
        return TimerReason.NO_ANCHOR, f"the event has no {rule.at}"
    if scope_value is None or not rule.cancel_on:
        return None
    row = ctx.item.row
    column = Event.tracking_number if rule.scope is Scope.PARCEL else Event.customer_id
    value = scope_value if rule.scope is Scope.PARCEL else row["customer_id"]
    later = ctx.session.scalars(select(Event).where(
        Event.tenant == row["tenant"], column == value, Event.type.in_(rule.cancel_on),
        Event.occurred_at >= row["occurred_at"], Event.id != ctx.item.pk)).all()
    for event in later:
        if event.payload is not None and _cancels(rule, event.payload, row["payload"]):
            return TimerReason.MOOT, f"{event.type} {event.event_id}"
    return None


def _supersede(ctx: _Ctx, rule: Rule, scope_value: str) -> tuple[TimerReason, str] | None:
    """A newer trigger replaces open timers of the scope (or is a duplicate of them)."""
    row = ctx.item.row
    mine = match_key(row["payload"], rule)
    open_timers = _open_timers(ctx, rule, scope_value)
    for timer in open_timers:
        if timer.trigger_occurred_at > row["occurred_at"]:
            return TimerReason.STALE, "a newer event already scheduled this rule"
        if timer.match_key == mine:  # no replace fields: every newer trigger is a duplicate
            fields = ", ".join(rule.replace_when_changed) or "rule"
            return TimerReason.DUPLICATE, f"same {fields} as an earlier event"
    for timer in open_timers:
        _resolve(timer, TimerState.CANCELLED, TimerReason.REPLACED, ctx.item,
                 f"{row['type']} {row['event_id']}")
    return None


def _window_used(ctx: _Ctx, rule: Rule, first_fire: datetime
                 ) -> tuple[TimerReason, str] | None:
    """At most one follow-up of the rule per customer per window."""
    days = rule.once_per_customer_days or 0
    earlier = ctx.session.scalar(select(FollowupTimer.fire_at).where(
        FollowupTimer.tenant == ctx.item.row["tenant"], FollowupTimer.rule == rule.name,
        FollowupTimer.customer_key == ctx.cust_key,
        FollowupTimer.state.in_([TimerState.SCHEDULED, TimerState.FIRED]),
        FollowupTimer.fire_at > first_fire - timedelta(days=days)).limit(1))
    if earlier is None:
        return None
    return TimerReason.ONCE_PER_CUSTOMER, f"one already due {earlier.isoformat()}"
