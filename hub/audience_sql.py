"""Compiles a validated audience filter to one SQL condition over `customers` (outer-joined
to `customer_activity`), for SQLite and PostgreSQL. No per-customer Python: a count is one
query, a member list one keyset-paged query."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import phonenumbers
from sqlalchemy import (
    ColumnElement,
    Float,
    Table,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from hub.activity import consent_bit
from hub.audience_filter import AudienceFilter, Condition, Kind, Op, children, field_spec
from hub.audience_models import CustomerActivity
from hub.models import Customer, PushSubscriptionRow

CUSTOMERS = cast(Table, Customer.__table__)
ACTIVITY = cast(Table, CustomerActivity.__table__)
PUSH = cast(Table, PushSubscriptionRow.__table__)
_COUNTERS = {"parcels_30d", "parcels_90d", "parcels_365d", "conversions_count",
             "conversions_value"}


class Compiler:
    """Turns a filter into a WHERE clause; `now` fixes "within N days" for one query."""

    def __init__(self, dialect: str, now: datetime) -> None:
        self.dialect, self.now = dialect, now

    def where(self, audience: AudienceFilter) -> ColumnElement[bool]:
        return self.condition(audience.root)

    def condition(self, node: Condition) -> ColumnElement[bool]:
        match node.kind:
            case "all":
                return and_(*(self.condition(c) for c in children(node)))
            case "any":
                return or_(*(self.condition(c) for c in children(node)))
            case "not":  # two-valued: "unknown" (a NULL) is "no" before negating
                return not_(func.coalesce(self.condition(children(node)[0]), false()))
            case "consent":
                assert node.consent is not None
                test = node.consent
                tests = [consent_granted(test.purpose, ch) for ch in test.channels]
                return or_(*tests) if test.any else and_(*tests)
            case "reachable":
                assert node.reachable is not None
                tests = [address_usable(ch) for ch in node.reachable.channels]
                return or_(*tests) if node.reachable.any else and_(*tests)
        return self.field(node)

    def field(self, cond: Condition) -> ColumnElement[bool]:
        assert cond.field is not None and cond.op is not None
        spec = field_spec(cond.field)
        if spec.kind is Kind.TRAIT:
            return self.trait(cond.field.removeprefix("traits."), cond.op, cond.value)
        if cond.field == "phone_country":
            return self.phone_country(cond.op, cond.value)
        column = self.column(cond.field)
        if spec.kind is Kind.TIME:
            return self.time(column, cond.op, cond.value)
        return compare(column, cond.op, cond.value)

    @staticmethod
    def column(name: str) -> ColumnElement[Any]:
        if name.startswith("activity."):
            col = ACTIVITY.c[name.removeprefix("activity.")]
            # a customer without an activity row has no parcels, clicks or conversions
            return func.coalesce(col, 0) if col.name in _COUNTERS else col
        return CUSTOMERS.c[name]

    def time(self, column: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
        if op is Op.EXISTS:
            return column.is_not(None) if value else column.is_(None)
        since = self.now - timedelta(days=int(value))
        within = and_(column.is_not(None), column >= since)
        return within if op is Op.WITHIN_DAYS else or_(column.is_(None), column < since)

    def phone_country(self, op: Op, value: Any) -> ColumnElement[bool]:
        """By the number's calling code (+48 is PL; +1 is every NANP country alike)."""
        phone = CUSTOMERS.c.phone
        if op is Op.EXISTS:
            return phone.is_not(None) if value else phone.is_(None)
        regions = value if isinstance(value, list) else [value]
        codes = {phonenumbers.country_code_for_region(str(r).upper()) for r in regions}
        matched = or_(false(), *(phone.like(f"+{code}%") for code in codes if code))
        return and_(phone.is_not(None), not_(matched)) if op is Op.NE else matched

    def trait(self, key: str, op: Op, value: Any) -> ColumnElement[bool]:
        """A trait test that never fails on a value of another type: it is simply false."""
        json_type = self.json_type(key)
        if op is Op.EXISTS:
            return json_type.is_not(None) if value else json_type.is_(None)
        values = value if isinstance(value, list) else [value]
        sqlite = self.dialect == "sqlite"
        typed: ColumnElement[bool]
        if isinstance(values[0], bool):  # SQLite extracts booleans as 1/0, PG as 'true'
            typed = json_type.in_(["true", "false"] if sqlite else ["boolean"])
            wanted: list[Any] = [int(v) if sqlite else str(v).lower() for v in values]
            column = self.json_text(key)
        elif isinstance(values[0], str):
            typed = json_type == ("text" if sqlite else "string")
            wanted, column = values, self.json_text(key)
        else:
            typed = json_type.in_(["integer", "real"] if sqlite else ["number"])
            wanted = values
            column = case((typed, func.cast(self.json_text(key), Float)), else_=None)
        return and_(typed, compare(column, op, wanted if op is Op.IN else wanted[0]))

    def json_type(self, key: str) -> ColumnElement[Any]:
        traits = CUSTOMERS.c.traits
        if self.dialect == "sqlite":
            return func.json_type(traits, f"$.{key}")
        return func.jsonb_typeof(traits.op("->")(literal(key)))

    def json_text(self, key: str) -> ColumnElement[Any]:
        traits = CUSTOMERS.c.traits
        if self.dialect == "sqlite":
            return func.json_extract(traits, f"$.{key}")
        return traits.op("->>")(literal(key))


def compare(column: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
    """`column op value` for the comparison operators (and `exists` on a plain column)."""
    result: ColumnElement[bool]
    match op:
        case Op.EQ:
            result = column == value
        case Op.NE:
            result = or_(column.is_(None), column != value)
        case Op.IN:
            result = column.in_(value)
        case Op.GT:
            result = column > value
        case Op.GTE:
            result = column >= value
        case Op.LT:
            result = column < value
        case Op.LTE:
            result = column <= value
        case _:  # exists
            result = column.is_not(None) if value else column.is_(None)
    return result


def consent_granted(purpose: str, channel: str) -> ColumnElement[bool]:
    """A current consent for (purpose, channel): its bit in the activity row's
    `consent_mask`, which `hub.activity.sync_consents` rewrites from the ledger (as
    `preferences.derive_state` reads it: the row recorded last wins) with every ledger row."""
    return func.coalesce(ACTIVITY.c.consent_mask, 0).bitwise_and(
        consent_bit(purpose, channel)) != 0


def address_usable(channel: str) -> ColumnElement[bool]:
    """What consent-based messages need on the channel: a verified number or e-mail, or a
    live push subscription (suppressed addresses are keyed digests and not seen here)."""
    c = CUSTOMERS.c
    if channel == "sms":
        return and_(c.phone.is_not(None), c.phone_verified == true())
    if channel == "email":
        return and_(c.email.is_not(None), c.email_verified == true())
    return select(PUSH.c.id).where(PUSH.c.customer_pk == c.id,
                                   PUSH.c.active == true()).exists()


def reachable(purpose: str, channel: str) -> ColumnElement[bool]:
    """Reachable for the purpose on the channel: a current consent and a usable address.
    The consent bit is tested first, so the push subscription probe runs only for those
    who consented."""
    return case((consent_granted(purpose, channel), address_usable(channel)), else_=False)
