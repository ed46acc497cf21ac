"""Creating and cancelling timers inside the intake transaction: an accepted event never
loses its timers, and a later event that makes them moot cancels them atomically."""

from __future__ import annotations

import enum
import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, insert, or_, select
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
    events' own timers, in the caller's transaction. What a batch needs from the store is
    read in a few queries up front, then the events are applied in order in memory."""
    rules = active_rules()
    items = [i for i in accepted
             if any(i.row["type"] == r.on or i.row["type"] in r.cancel_on for r in rules)]
    if not items:
        return
    batch = _Batch(session, rules, items, tombstone_key(get_settings()))
    for item in items:
        for rule in rules:
            if item.row["type"] in rule.cancel_on:
                batch.cancel_moot(item, rule)
            if item.row["type"] == rule.on:
                batch.schedule(item, rule, now or utcnow())
    if batch.new:  # plain executemany: no ORM objects or RETURNING for rows nobody reads
        stamp = {"created_at": utcnow(), "updated_at": utcnow()}
        session.connection().execute(insert(TIMERS), [
            {name: getattr(t, name) for name in _PENDING_COLUMNS} | stamp for t in batch.new])
    session.flush()  # the loaded timers this batch cancelled or replaced


@dataclass(slots=True)
class _Pending:
    """A timer row this batch will insert (mutable until then, like a loaded timer)."""

    tenant: str
    rule: str
    offset: str
    trigger_event_pk: int
    trigger_occurred_at: datetime
    scope_value: str
    customer_key: str
    match_key: str
    send_type: str
    fire_at: datetime
    anchor_at: datetime | None
    state: str
    reason: str | None
    detail: str | None
    resolved_by_event_pk: int | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


_PENDING_COLUMNS = tuple(f.name for f in fields(_Pending))  # a shallow asdict: no deep copies
TIMERS = cast(Table, FollowupTimer.__table__)

_Key = tuple[str, str, str]  # tenant, rule, scope value

# The batch's loads, built once (intake runs them for every group of requests).
_T = TIMERS.c
_OPEN_IDS = select(_T.id).where(
    _T.tenant.in_(bindparam("tenants", expanding=True)),
    _T.rule.in_(bindparam("rules", expanding=True)),
    _T.scope_value.in_(bindparam("scopes", expanding=True)),
    _T.state == TimerState.SCHEDULED.value)
_E = cast(Table, Event.__table__).c
_MOOT_EVENTS = select(_E.id, _E.event_id, _E.tenant, _E.type, _E.tracking_number,
                      _E.customer_id, _E.occurred_at, _E.payload).where(
    _E.tenant.in_(bindparam("tenants", expanding=True)),
    _E.type.in_(bindparam("types", expanding=True)),
    or_(_E.tracking_number.in_(bindparam("parcels", expanding=True)),
        _E.customer_id.in_(bindparam("people", expanding=True))))
_WINDOWS = select(_T.rule, _T.tenant, _T.customer_key, _T.fire_at, _T.state).where(
    _T.rule.in_(bindparam("rules", expanding=True)),
    _T.customer_key.in_(bindparam("keys", expanding=True)),
    _T.state.in_([TimerState.SCHEDULED.value, TimerState.FIRED.value]))


class _Batch:
    """Open timers, moot-making events and per-customer windows of one intake batch."""

    def __init__(self, session: Session, rules: tuple[Rule, ...], items: list[Accepted],
                 erasure_key: str) -> None:
        self.session, self.rules, self.items = session, rules, items
        self.keys = {i.pk: customer_key(erasure_key, i.row["tenant"], i.row["customer_id"])
                     for i in items}
        self.new: list[_Pending] = []
        self.open: dict[_Key, list[FollowupTimer | _Pending]] = defaultdict(list)
        for timer in self._load_open():
            self.open[(timer.tenant, timer.rule, timer.scope_value)].append(timer)
        self.later = self._load_moot_events()
        self.recent = self._load_windows()

    def scope_value(self, item: Accepted, rule: Rule) -> str | None:
        if rule.scope is Scope.PARCEL:
            tracking: str | None = item.row["tracking_number"]
            return tracking
        return self.keys[item.pk]

    def _relevant(self, item: Accepted, rule: Rule) -> bool:
        return item.row["type"] == rule.on or item.row["type"] in rule.cancel_on

    def _load_open(self) -> list[FollowupTimer]:
        """Scheduled timers this batch may cancel or replace: found with a plain query, and
        loaded as objects (which the flush updates) only when there are any."""
        pairs = [(i, r) for i in self.items for r in self.rules if self._relevant(i, r)]
        scopes = {v for i, r in pairs if (v := self.scope_value(i, r))}
        if not scopes:
            return []
        ids = list(self.session.connection().scalars(_OPEN_IDS, {
            "tenants": list({i.row["tenant"] for i, _ in pairs}),
            "rules": list({r.name for _, r in pairs}), "scopes": list(scopes)}))
        if not ids:
            return []
        return list(self.session.scalars(select(FollowupTimer).where(FollowupTimer.id.in_(ids))))

    def _load_moot_events(self) -> list[Row[Any]]:
        """Stored events that may make a trigger of this batch moot (its scope, cancel types)."""
        triggers = [(i, r) for i in self.items for r in self.rules
                    if i.row["type"] == r.on and r.cancel_on]
        if not triggers:
            return []
        parcels = {i.row["tracking_number"] for i, r in triggers if r.scope is Scope.PARCEL}
        people = {i.row["customer_id"] for i, r in triggers if r.scope is Scope.CUSTOMER}
        return list(self.session.connection().execute(_MOOT_EVENTS, {
            "tenants": list({i.row["tenant"] for i, _ in triggers}),
            "types": list({t for _, r in triggers for t in r.cancel_on}),
            "parcels": list(parcels - {None}), "people": list(people)}))

    def _load_windows(self) -> list[Row[Any]]:
        """Timers of once-per-customer rules this batch triggers, for its customers."""
        names = {r.name for i in self.items for r in self.rules
                 if r.once_per_customer_days and i.row["type"] == r.on}
        if not names:
            return []
        return list(self.session.connection().execute(_WINDOWS, {
            "rules": list(names), "keys": list(set(self.keys.values()))}))

    def cancel_moot(self, item: Accepted, rule: Rule) -> None:
        """A later event of the scope (delivered, points spent) cancels its open timers."""
        scope_value = self.scope_value(item, rule)
        row = item.row
        for timer in self.open.get((row["tenant"], rule.name, scope_value or ""), []):
            if timer.state != TimerState.SCHEDULED or timer.trigger_occurred_at > row["occurred_at"]:
                continue  # an older later-event cannot answer a newer trigger
            trigger = self.session.get(Event, timer.trigger_event_pk) if rule.cancel_if else None
            if rule.cancel_if and not _cancels(rule, row["payload"],
                                               trigger.payload if trigger else None):
                continue
            _resolve(timer, TimerState.CANCELLED, TimerReason.MOOT, item,
                     f"{row['type']} {row['event_id']}")

    def schedule(self, item: Accepted, rule: Rule, now: datetime) -> None:
        """The trigger's own timers (skipped with a reason where they cannot go out)."""
        row, scope_value = item.row, self.scope_value(item, rule)
        anchor = (row["occurred_at"] if rule.at == "occurred_at"
                  else anchor_of(row["payload"], rule))
        plan = [(o, (anchor or row["occurred_at"]) + o.delta) for o in rule.offsets]
        verdict = self._blocked(item, rule, anchor)
        if verdict is None and scope_value is not None:
            verdict = self._supersede(item, rule, scope_value)
        if verdict is None and rule.once_per_customer_days:
            verdict = self._window_used(item, rule, min(at for _, at in plan))
        states = []
        for offset, fire_at in plan:
            reason, detail = verdict or (None, None)
            if reason is None and fire_at <= now:
                reason, detail = TimerReason.TOO_LATE, f"fire time {fire_at.isoformat()} passed"
            timer = _Pending(
                tenant=row["tenant"], rule=rule.name, offset=offset.text,
                trigger_event_pk=item.pk, trigger_occurred_at=row["occurred_at"],
                scope_value=scope_value or "", customer_key=self.keys[item.pk],
                match_key=match_key(row["payload"], rule), send_type=rule.send,
                fire_at=fire_at, anchor_at=anchor,
                state=TimerState.SKIPPED if reason else TimerState.SCHEDULED, reason=reason,
                detail=detail)
            self.new.append(timer)
            self.open[(row["tenant"], rule.name, timer.scope_value)].append(timer)
            states.append(f"{offset.text}:{timer.state}{':' + reason if reason else ''}")
        log.info("followup_timers", rule=rule.name, event_pk=item.pk, timers=states)

    def _blocked(self, item: Accepted, rule: Rule, anchor: datetime | None
                 ) -> tuple[TimerReason, str] | None:
        """No anchor, or an event already recorded that makes the new timers moot."""
        if anchor is None:
            return TimerReason.NO_ANCHOR, f"the event has no {rule.at}"
        row = item.row
        for event in self.later:
            same = (event.tracking_number == row["tracking_number"]
                    if rule.scope is Scope.PARCEL else event.customer_id == row["customer_id"])
            if (same and event.tenant == row["tenant"] and event.type in rule.cancel_on
                    and event.id != item.pk and event.occurred_at >= row["occurred_at"]
                    and event.payload is not None
                    and _cancels(rule, event.payload, row["payload"])):
                return TimerReason.MOOT, f"{event.type} {event.event_id}"
        return None

    def _supersede(self, item: Accepted, rule: Rule, scope_value: str
                   ) -> tuple[TimerReason, str] | None:
        """A newer trigger replaces open timers of the scope (or is a duplicate of them)."""
        row = item.row
        mine = match_key(row["payload"], rule)
        open_timers = [t for t in self.open.get((row["tenant"], rule.name, scope_value), [])
                       if t.state == TimerState.SCHEDULED]
        for timer in open_timers:
            if timer.trigger_occurred_at > row["occurred_at"]:
                return TimerReason.STALE, "a newer event already scheduled this rule"
            if timer.match_key == mine:  # no replace fields: every newer trigger duplicates
                fields = ", ".join(rule.replace_when_changed) or "rule"
                return TimerReason.DUPLICATE, f"same {fields} as an earlier event"
        for timer in open_timers:
            _resolve(timer, TimerState.CANCELLED, TimerReason.REPLACED, item,
                     f"{row['type']} {row['event_id']}")
        return None

    def _window_used(self, item: Accepted, rule: Rule, first_fire: datetime
                     ) -> tuple[TimerReason, str] | None:
        """At most one follow-up of the rule per customer per window."""
        since = first_fire - timedelta(days=rule.once_per_customer_days or 0)
        known: list[Any] = [*self.recent, *self.new]  # stored rows and this batch's timers
        for timer in known:
            if (timer.rule == rule.name and timer.tenant == item.row["tenant"]
                    and timer.customer_key == self.keys[item.pk] and timer.fire_at > since
                    and timer.state in (TimerState.SCHEDULED, TimerState.FIRED)):
                return TimerReason.ONCE_PER_CUSTOMER, f"one already due {timer.fire_at.isoformat()}"
        return None


def _cancels(rule: Rule, later: dict[str, Any], trigger: dict[str, Any] | None) -> bool:
    """Whether a later event of `cancel_on` makes the trigger's timers moot."""
    if rule.cancel_if is None:
        return True
    value, limit = lookup(later, rule.cancel_if.field), (
        lookup(trigger, rule.cancel_if.below_trigger) if trigger else None)
    numbers = (int, float)
    return isinstance(value, numbers) and isinstance(limit, numbers) and value < limit


def _resolve(timer: FollowupTimer | _Pending, state: TimerState, reason: TimerReason,
             by: Accepted | None, detail: str) -> None:
    timer.state, timer.reason, timer.detail = state, reason, detail
    timer.resolved_by_event_pk = by.pk if by else None
    timer.lease_owner = timer.lease_until = None
    log.info("followup_timer", rule=timer.rule, offset=timer.offset, state=str(state),
             reason=str(reason), by_event_pk=timer.resolved_by_event_pk)
