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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, String, Table, case, func, select, union, update
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
    insert_ignoring(session, CustomerActivity,
                    [{"customer_pk": pk, "tenant": t, "updated_at": utcnow()}
                     for t, pk in dict.fromkeys(rows)], ["customer_pk"])


def note_parcels(session: Session, seen: list[ParcelSeen], now: datetime | None = None) -> None:
    """Records the parcels of a loaded batch (idempotent: a retried job changes nothing)
    and recounts their customers."""
    if not seen:
        return
    now = now or utcnow()
    insert_ignoring(session, CustomerParcel, [
        {"customer_pk": s.customer_pk, "tenant": s.tenant, "tracking_number": s.tracking_number,
         "first_seen_at": min(s.seen_at, now), "delivery_method": s.delivery_method}
        for s in seen], ["customer_pk", "tracking_number"])
    known = [s for s in seen if s.delivery_method is not None]
    for s in known:  # the method a later event shows wins (a redirect to a pickup point)
        session.execute(update(PARCELS).where(
            PARCELS.c.customer_pk == s.customer_pk,
            PARCELS.c.tracking_number == s.tracking_number).values(
            delivery_method=s.delivery_method))
    _ensure(session, ((s.tenant, s.customer_pk) for s in seen))
    for s in known:
        session.execute(update(ACTIVITY).where(ACTIVITY.c.customer_pk == s.customer_pk)
                        .values(last_delivery_method=s.delivery_method))
    recount(session, {s.customer_pk for s in seen}, now)


def recount(session: Session, customer_pks: set[int], now: datetime | None = None) -> None:
    """Recounts parcel counters, last parcel and RFM of these customers from their rows."""
    if not customer_pks:
        return
    now = now or utcnow()
    mine = PARCELS.c.customer_pk == ACTIVITY.c.customer_pk

    def parcels_since(days: int) -> Any:
        return (select(func.count()).where(mine, PARCELS.c.first_seen_at >= now - timedelta(
            days=days)).scalar_subquery())

    session.execute(update(ACTIVITY).where(ACTIVITY.c.customer_pk.in_(sorted(customer_pks)))
                    .values(**{f"parcels_{d}d": parcels_since(d) for d in WINDOWS},
                            last_parcel_at=select(func.max(PARCELS.c.first_seen_at))
                            .where(mine).scalar_subquery(),
                            counted_at=now, updated_at=now))
    _score(session, ACTIVITY.c.customer_pk.in_(sorted(customer_pks)), now)


def _score(session: Session, which: ColumnElement[bool], now: datetime) -> None:
    """Sets the RFM scores of the selected rows from their stored counters."""
    last = ACTIVITY.c.last_parcel_at
    recency = case(*((last >= now - timedelta(days=d), 5 - i)
                     for i, d in enumerate(RECENCY_DAYS)), else_=1)
    frequency = case(*((ACTIVITY.c.parcels_365d >= n, 5 - i)
                       for i, n in enumerate(FREQUENCY_PARCELS)), else_=1)
    monetary = case(*((ACTIVITY.c.conversions_value >= v, 5 - i)
                      for i, v in enumerate(MONETARY_VALUE)), else_=1)
    session.execute(update(ACTIVITY).where(which).values(
        rfm_recency=recency, rfm_frequency=frequency, rfm_monetary=monetary))
    session.execute(update(ACTIVITY).where(which).values(
        rfm=func.cast(ACTIVITY.c.rfm_recency, String) + func.cast(ACTIVITY.c.rfm_frequency,
                                                                   String)
        + func.cast(ACTIVITY.c.rfm_monetary, String)))


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
