"""Customer activity the hub computes from its own event stream (issue 13).

* Parcels: the load step records each (customer, tracking number) once with the time it was
  first seen and the delivery method the events show (`note_parcels`), then recounts the
  touched customers' 30/90/365-day counters and RFM score at once.
* Windows slide: `refresh_due` (run by housekeeping) recounts only the customers a window
  or an RFM recency threshold passed over since `since`; counts are exact at every recount.
* Clicks and conversions update `last_click_at` / `last_conversion_at` and the conversion
  totals as they are recorded.

RFM (definition in docs/architecture.md) is three 1–5 scores and their code, e.g. "534"."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import ColumnElement, String, Table, bindparam, case, func, select, union, update
from sqlalchemy.orm import Session

from hub.audience_models import CustomerActivity, CustomerParcel
from hub.db import insert_ignoring, utcnow

ACTIVITY = cast(Table, CustomerActivity.__table__)
PARCELS = cast(Table, CustomerParcel.__table__)
WINDOWS = (30, 90, 365)  # parcels_<n>d
# RFM thresholds: score 5 at the first, down to 2 at the last; below that 1.
RECENCY_DAYS = (7, 30, 90, 180)  # days since the last parcel, at most
FREQUENCY_PARCELS = (24, 12, 6, 2)  # parcels in 365 days, at least
MONETARY_VALUE = (1000, 500, 200, 1)  # conversion value in total, at least
PICKUP_TYPES = frozenset({"parcel.ready_for_pickup", "parcel.pickup_reminder"})
COURIER_TYPES = frozenset({"parcel.out_for_delivery", "parcel.delivery_attempt_failed",
                           "parcel.delivery_rescheduled"})


@dataclass(frozen=True, slots=True)
class ParcelSeen:
    """One event's parcel, for its customer."""

    customer_pk: int
    tenant: str
    tracking_number: str
    seen_at: datetime
    delivery_method: str | None


def delivery_method(payload: dict[str, Any]) -> str | None:
    """`pickup_point` when the event names a pickup point (or is a pickup notice),
    `courier` for doorstep events, else None (the event does not say)."""
    parcel = payload.get("parcel") or {}
    if parcel.get("pickup_point") or payload.get("type") in PICKUP_TYPES:
        return "pickup_point"
    return "courier" if payload.get("type") in COURIER_TYPES else None


def _ensure(session: Session, rows: Iterable[tuple[str, int]]) -> None:
    """Creates missing activity rows, in key order (two workers inserting the same new keys
    in different orders could deadlock on the unique index)."""
    insert_ignoring(session, CustomerActivity,
                    [{"customer_pk": pk, "tenant": t, "updated_at": utcnow()}
                     for t, pk in sorted(set(rows), key=lambda r: r[1])], ["customer_pk"])


def note_parcels(session: Session, seen: list[ParcelSeen], now: datetime | None = None) -> None:
    """Records the parcels of a loaded batch (idempotent: a retried job changes nothing)
    and recounts the customers whose parcels changed. Most events are about a parcel already
    known with its delivery method: those cost one query and no write."""
    if not seen:
        return
    now = now or utcnow()
    first: dict[tuple[int, str], ParcelSeen] = {}
    for s in sorted(seen, key=lambda s: s.seen_at):  # one row per parcel, its first event
        first.setdefault((s.customer_pk, s.tracking_number), s)
    known = {(r.customer_pk, r.tracking_number): r.delivery_method
             for r in session.connection().execute(_KNOWN_PARCELS, {
                 "b_pks": sorted({pk for pk, _ in first}),
                 "b_numbers": sorted({t for _, t in first})})}
    new = [s for key, s in sorted(first.items()) if key not in known]
    insert_ignoring(session, CustomerParcel, [
        {"customer_pk": s.customer_pk, "tenant": s.tenant, "tracking_number": s.tracking_number,
         "first_seen_at": min(s.seen_at, now), "delivery_method": s.delivery_method}
        for s in new], ["customer_pk", "tracking_number"])
    # a later event's method wins (a redirect to a pickup point); one statement for the batch,
    # rows in key order so that two workers lock them in the same order
    methods = {(s.customer_pk, s.tracking_number): s.delivery_method
               for s in sorted(seen, key=lambda s: s.seen_at) if s.delivery_method is not None}
    inserted = {(s.customer_pk, s.tracking_number): s.delivery_method for s in new}
    changed = {key: m for key, m in methods.items()
               if (known[key] if key in known else inserted[key]) != m}
    if changed:
        session.connection().execute(_NEW_METHOD, [
            {"b_pk": pk, "b_tracking": t, "b_method": m} for (pk, t), m in sorted(changed.items())])
    touched = {s.customer_pk for s in new} | {pk for pk, _ in changed}
    _ensure(session, ((s.tenant, s.customer_pk) for s in seen if s.customer_pk in touched))
    recount(session, touched, now)


# note_parcels' statements, built once (every engine batch runs them)
_KNOWN_PARCELS = (
    select(PARCELS.c.customer_pk, PARCELS.c.tracking_number, PARCELS.c.delivery_method)
    .where(PARCELS.c.customer_pk.in_(bindparam("b_pks", expanding=True)),
           PARCELS.c.tracking_number.in_(bindparam("b_numbers", expanding=True))))
_NEW_METHOD = (update(PARCELS)
               .where(PARCELS.c.customer_pk == bindparam("b_pk"),
                      PARCELS.c.tracking_number == bindparam("b_tracking"))
               .values(delivery_method=bindparam("b_method")))


def recount(session: Session, customer_pks: set[int], now: datetime | None = None) -> None:
    """Recounts parcel counters, last parcel, last delivery method (that of the newest parcel
    whose method is known) and RFM of these customers from their parcel rows."""
    if not customer_pks:
        return
    now = now or utcnow()
    params: dict[str, Any] = {"b_pks": sorted(customer_pks), "b_now": now}
    params |= {f"b_since_{d}": now - timedelta(days=d) for d in {*WINDOWS, *RECENCY_DAYS}}
    session.connection().execute(_recount_statement(), params)


@lru_cache(maxsize=1)
def _recount_statement() -> Any:
    """`recount`'s one UPDATE, built once (it runs for every batch with a new parcel): the
    scores are computed from the same expressions as the counters."""
    mine = PARCELS.c.customer_pk == ACTIVITY.c.customer_pk

    def since(days: int) -> Any:
        return bindparam(f"b_since_{days}", type_=PARCELS.c.first_seen_at.type)

    counters: dict[str, Any] = {
        f"parcels_{d}d": select(func.count()).where(mine, PARCELS.c.first_seen_at >= since(d))
        .scalar_subquery() for d in WINDOWS}
    counters["last_parcel_at"] = (select(func.max(PARCELS.c.first_seen_at)).where(mine)
                                  .scalar_subquery())
    now = bindparam("b_now", type_=ACTIVITY.c.counted_at.type)
    return update(ACTIVITY).where(
        ACTIVITY.c.customer_pk.in_(bindparam("b_pks", expanding=True))).values(
        **counters,
        last_delivery_method=select(PARCELS.c.delivery_method)
        .where(mine, PARCELS.c.delivery_method.is_not(None))
        .order_by(PARCELS.c.first_seen_at.desc()).limit(1).scalar_subquery(),
        counted_at=now, updated_at=now,
        **_rfm(counters["last_parcel_at"], counters["parcels_365d"],
               ACTIVITY.c.conversions_value, since))


def _rfm(last: Any, parcels_365d: Any, value: Any, since: Callable[[int], Any]
         ) -> dict[str, Any]:
    """The RFM score columns, from expressions for the last parcel, the parcels of the last
    365 days and the conversions' value; `since(d)` is the instant d days before now."""
    recency = case(*((last >= since(d), 5 - i)
                     for i, d in enumerate(RECENCY_DAYS)), else_=1)
    frequency = case(*((parcels_365d >= n, 5 - i)
                       for i, n in enumerate(FREQUENCY_PARCELS)), else_=1)
    monetary = case(*((value >= v, 5 - i) for i, v in enumerate(MONETARY_VALUE)), else_=1)
    return {"rfm_recency": recency, "rfm_frequency": frequency, "rfm_monetary": monetary,
            "rfm": func.cast(recency, String) + func.cast(frequency, String)
            + func.cast(monetary, String)}


def _score(session: Session, which: ColumnElement[bool], now: datetime) -> None:
    """Sets the RFM scores of the selected rows from their stored counters."""
    session.execute(update(ACTIVITY).where(which).values(**_rfm(
        ACTIVITY.c.last_parcel_at, ACTIVITY.c.parcels_365d, ACTIVITY.c.conversions_value,
        lambda days: now - timedelta(days=days))))


def refresh_due(session: Session, since: datetime, now: datetime | None = None) -> int:
    """Recounts the customers whose counters or recency score changed by time alone since
    `since` (a parcel left a window, the last parcel passed a recency threshold); returns how
    many. Cheap: each test is a range scan of an index, and recounting twice is harmless."""
    now = now or utcnow()
    crossed = [select(PARCELS.c.customer_pk).where(
        PARCELS.c.first_seen_at >= since - timedelta(days=d),
        PARCELS.c.first_seen_at < now - timedelta(days=d)) for d in WINDOWS]
    crossed += [select(ACTIVITY.c.customer_pk).where(
        ACTIVITY.c.last_parcel_at >= since - timedelta(days=d),
        ACTIVITY.c.last_parcel_at < now - timedelta(days=d)) for d in RECENCY_DAYS]
    pks = set(session.scalars(union(*crossed)))
    for chunk in _chunks(sorted(pks), 5_000):
        recount(session, set(chunk), now)
    return len(pks)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def note_click(session: Session, tenant: str, customer_pk: int, at: datetime) -> None:
    """A counted click: the customer's last click moves forward (never back)."""
    _ensure(session, [(tenant, customer_pk)])
    last = ACTIVITY.c.last_click_at
    session.execute(update(ACTIVITY).where(ACTIVITY.c.customer_pk == customer_pk).values(
        last_click_at=case((last.is_(None) | (last < at), at), else_=last), updated_at=at))


def note_conversion(session: Session, tenant: str, customer_pk: int, at: datetime,
                    value: Decimal) -> None:
    """A new conversion: totals grow, the last conversion moves forward, monetary rescored."""
    _ensure(session, [(tenant, customer_pk)])
    last = ACTIVITY.c.last_conversion_at
    now = utcnow()
    session.execute(update(ACTIVITY).where(ACTIVITY.c.customer_pk == customer_pk).values(
        last_conversion_at=case((last.is_(None) | (last < at), at), else_=last),
        conversions_count=ACTIVITY.c.conversions_count + 1,
        conversions_value=ACTIVITY.c.conversions_value + value, updated_at=now))
    _score(session, ACTIVITY.c.customer_pk == customer_pk, now)


def export_json(session: Session, customer_pk: int) -> dict[str, Any]:
    """What the hub computed and recorded about a customer for marketers (GDPR export)."""
    from hub.audience_models import Conversion, LinkClick, TrackedLink

    row = session.get(CustomerActivity, customer_pk)
    parcels = session.scalars(select(CustomerParcel).where(
        CustomerParcel.customer_pk == customer_pk).order_by(CustomerParcel.first_seen_at))
    clicks = session.execute(select(LinkClick.clicked_at, TrackedLink.url, LinkClick.campaign_id)
                             .join(TrackedLink, TrackedLink.id == LinkClick.link_id)
                             .where(LinkClick.customer_pk == customer_pk)
                             .order_by(LinkClick.id))
    conversions = session.scalars(select(Conversion).where(
        Conversion.customer_pk == customer_pk).order_by(Conversion.id))
    return {
        "activity": None if row is None else {
            "last_parcel_at": _iso(row.last_parcel_at), "parcels_30d": row.parcels_30d,
            "parcels_90d": row.parcels_90d, "parcels_365d": row.parcels_365d,
            "last_delivery_method": row.last_delivery_method,
            "last_click_at": _iso(row.last_click_at),
            "last_conversion_at": _iso(row.last_conversion_at),
            "conversions_count": row.conversions_count,
            "conversions_value": str(row.conversions_value), "rfm": row.rfm},
        "parcels": [{"tracking_number": p.tracking_number, "first_seen_at": _iso(p.first_seen_at),
                     "delivery_method": p.delivery_method} for p in parcels],
        "clicks": [{"clicked_at": _iso(at), "url": url, "campaign_id": campaign}
                   for at, url, campaign in clicks],
        "conversions": [{"external_id": c.external_id, "value": str(c.value),
                         "currency": c.currency, "occurred_at": _iso(c.occurred_at),
                         "campaign_id": c.campaign_id, "variant": c.variant}
                        for c in conversions],
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


# --- the consent ledger's current state, as bits audiences filter on -------------------

CONSENT_PURPOSES = ("marketing", "loyalty")
# Bit positions are stored (migration 0011 writes them): purpose × 16 + channel, so a
# channel appended here later moves no existing bit; never reorder.
CONSENT_CHANNELS = ("sms", "email", "push", "app_push", "inbox")
_PURPOSE_STRIDE = 16


def consent_bit(purpose: str, channel: str) -> int:
    """The bit of a granted (purpose, channel) in `consent_mask`."""
    return 1 << (CONSENT_PURPOSES.index(purpose) * _PURPOSE_STRIDE
                 + CONSENT_CHANNELS.index(channel))


def consent_mask(latest: Mapping[tuple[str, str], str]) -> int:
    """The bits of the (purpose, channel) pairs whose current action is a grant."""
    return sum(consent_bit(p, c) for (p, c), action in latest.items()
               if action == "granted" and p in CONSENT_PURPOSES and c in CONSENT_CHANNELS)


def sync_consents(session: Session, tenant: str, external_id: str) -> None:
    """Rewrites the customer's consent bits from the whole ledger, as the resolver derives
    it (`preferences.derive_state`); called with every row appended to the ledger."""
    from hub.customers import consent_entries, get_customer
    from preferences import derive_state

    customer = get_customer(session, tenant, external_id)
    if customer is None:
        return
    state = derive_state(consent_entries(session, tenant, external_id))
    _ensure(session, [(tenant, customer.id)])
    session.execute(update(ACTIVITY).where(ACTIVITY.c.customer_pk == customer.id).values(
        consent_mask=consent_mask({k: str(v) for k, v in state.latest.items()}),
        updated_at=utcnow()))
