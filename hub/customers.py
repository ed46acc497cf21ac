"""Customer profiles in the store, and their conversion to the resolver's plain Profile."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.models import Customer
from preferences import Profile

_INLINE_FIELDS = ("name", "phone", "email", "locale", "tone", "time_zone", "segment")


def upsert_inline(session: Session, ref: dict[str, Any]) -> Customer:
    """Creates the customer named by an event, or updates it with the inline contact details."""
    customer = session.scalar(select(Customer).where(Customer.external_id == ref["id"]))
    if customer is None:
        customer = Customer(external_id=ref["id"], preferences={})
        try:
            with session.begin_nested():
                session.add(customer)
        except IntegrityError:  # created concurrently by another worker
            customer = session.scalars(
                select(Customer).where(Customer.external_id == ref["id"])
            ).one()
    for field in _INLINE_FIELDS:
        if ref.get(field) is not None and getattr(customer, field) != ref[field]:
            setattr(customer, field, ref[field])
    return customer


def to_profile(customer: Customer) -> Profile:
    """The resolver's view of a stored customer."""
    channels = (customer.preferences or {}).get("channels", {})
    return Profile(
        customer_id=customer.external_id,
        locale=customer.locale,
        tone=customer.tone,
        time_zone=customer.time_zone,
        segment=customer.segment,
        name=customer.name,
        phone=customer.phone,
        email=customer.email,
        channels={k: tuple(v) for k, v in channels.items()},
    )
