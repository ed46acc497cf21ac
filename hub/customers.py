"""Customer profiles in the store, and their conversion to the resolver's plain Profile."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from hub.models import Customer
from hub.receipts import active_push_addresses, is_suppressed
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
    phone, email, push = customer.phone, customer.email, ()
    session = object_session(customer)
    if session is not None:  # channels: dead or opted-out addresses, live push subscriptions
        phone = None if phone and is_suppressed(session, "sms", phone) else phone
        email = None if email and is_suppressed(session, "email", email) else email
        push = active_push_addresses(session, customer.external_id)
    return Profile(
        customer_id=customer.external_id,
        locale=customer.locale,
        tone=customer.tone,
        time_zone=customer.time_zone,
        segment=customer.segment,
        name=customer.name,
        phone=phone,
        email=email,
        push_endpoints=push,
        channels={k: tuple(v) for k, v in channels.items()},
    )
