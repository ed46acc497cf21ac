"""Customer profiles in the store: inline upserts from events, erasure tombstones, push
subscriptions, and the resolver's plain view of a stored customer."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.logs import get_logger
from hub.models import ConsentRecord, Customer, CustomerTombstone, PushSubscriptionRow
from hub.settings import Settings
from hub.suppressions import without_suppressed
from preferences import (
    AddressError,
    ConsentEntry,
    ConsentState,
    Preferences,
    Profile,
    PushSubscription,
    check_locale,
    check_time_zone,
    derive_state,
    normalize_phone,
    preferences_from_json,
)
from preferences.consent import ConsentAction

log = get_logger("customers")

_PLAIN_FIELDS = ("name", "tone", "segment")


def tombstone_key(settings: Settings) -> str:
    """The key of erasure digests (tombstone_key, else secret_key)."""
    secret = settings.tombstone_key or settings.secret_key
    return secret.get_secret_value()


def tombstone_digest(key: str, external_id: str) -> str:
    """Keyed, non-reversible digest of an external id: all that erasure keeps."""
    return hmac.new(key.encode(), f"customer:{external_id}".encode(), hashlib.sha256).hexdigest()


def pseudonym(digest: str) -> str:
    """What replaces an erased customer's id in events and notifications."""
    return f"erased-{digest[:20]}"


def is_erased(session: Session, key: str, external_id: str) -> bool:
    """True when the customer was erased (a tombstone exists)."""
    digest = tombstone_digest(key, external_id)
    return session.scalar(
        select(CustomerTombstone.id).where(CustomerTombstone.digest == digest)
    ) is not None


def get_customer(session: Session, external_id: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.external_id == external_id))


def upsert_inline(session: Session, ref: dict[str, Any], key: str) -> Customer | None:
    """Creates the customer named by an event, or updates it with the inline contact details;
    None (and nothing written) when the customer was erased."""
    if is_erased(session, key, ref["id"]):
        return None
    customer = get_customer(session, ref["id"])
    if customer is None:
        customer = Customer(external_id=ref["id"], preferences={})
        try:
            with session.begin_nested():
                session.add(customer)
        except IntegrityError:  # created concurrently by another worker
            customer = session.scalars(
                select(Customer).where(Customer.external_id == ref["id"])
            ).one()
    apply_inline(customer, ref)
    return customer


def apply_inline(customer: Customer, ref: dict[str, Any]) -> None:
    """Copies usable inline details; invalid ones are ignored (logged without the value)."""
    for field in _PLAIN_FIELDS:
        if ref.get(field) is not None and getattr(customer, field) != ref[field]:
            setattr(customer, field, ref[field])
    try:
        if ref.get("locale"):
            customer.locale = check_locale(ref["locale"])
        if ref.get("time_zone"):
            customer.time_zone = check_time_zone(ref["time_zone"])
        if ref.get("phone"):
            set_phone(customer, normalize_phone(ref["phone"]), verified=None)
    except AddressError as exc:
        log.warning("inline_detail_ignored", customer_id=customer.external_id,
                    problem=str(exc.problem))
    if ref.get("email"):
        set_email(customer, ref["email"], verified=None)


def set_phone(customer: Customer, phone: str | None, verified: bool | None) -> None:
    """A changed number loses its verified flag unless `verified` says otherwise."""
    if customer.phone != phone:
        customer.phone, customer.phone_verified = phone, False
    if verified is not None:
        customer.phone_verified = verified and phone is not None


def set_email(customer: Customer, email: str | None, verified: bool | None) -> None:
    """A changed address loses its verified flag unless `verified` says otherwise."""
    if customer.email != email:
        customer.email, customer.email_verified = email, False
    if verified is not None:
        customer.email_verified = verified and email is not None


def active_push_subscriptions(session: Session, customer: Customer) -> list[PushSubscriptionRow]:
    """The customer's live push subscriptions, newest first."""
    return list(session.scalars(
        select(PushSubscriptionRow)
        .where(PushSubscriptionRow.customer_pk == customer.id, PushSubscriptionRow.active)
        .order_by(PushSubscriptionRow.created_at.desc(), PushSubscriptionRow.id.desc())
    ))


def save_push_subscription(
    session: Session, customer: Customer, endpoint: str, p256dh: str, auth: str,
    expiration_time: Any = None,
) -> PushSubscriptionRow:
    """Adds (or re-activates and re-assigns) the subscription with this endpoint."""
    row = session.scalar(
        select(PushSubscriptionRow).where(PushSubscriptionRow.endpoint == endpoint)
    )
    if row is None:
        row = PushSubscriptionRow(customer_pk=customer.id, endpoint=endpoint, p256dh=p256dh,
                                  auth=auth, expiration_time=expiration_time)
        session.add(row)
    else:
        row.customer_pk, row.p256dh, row.auth = customer.id, p256dh, auth
        row.expiration_time, row.active, row.deactivated_reason = expiration_time, True, None
        row.created_at = utcnow()
    session.flush()
    return row


def deactivate_push_subscription(session: Session, endpoint: str, reason: str) -> bool:
    """Stops using a subscription (e.g. the push service answered 404/410); True if it was live.

    For the WebPush adapter: the route address is the subscription JSON; pass its `endpoint`.
    """
    result = session.execute(
        update(PushSubscriptionRow)
        .where(PushSubscriptionRow.endpoint == endpoint, PushSubscriptionRow.active)
        .values(active=False, deactivated_reason=reason[:200], updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def find_customers_by_phone(session: Session, phone: str) -> list[str]:
    """External ids of customers with this number (for an inbound SMS STOP)."""
    try:
        phone = normalize_phone(phone)
    except AddressError:
        return []
    return list(session.scalars(select(Customer.external_id).where(Customer.phone == phone)))


@dataclass(frozen=True, slots=True)
class Recipient:
    """Everything the resolver reads about one customer."""

    profile: Profile
    preferences: Preferences
    consents: ConsentState


def erased_recipient(external_id: str) -> Recipient:
    """The stand-in for an erased customer: every route is skipped with `erased`."""
    return Recipient(Profile(customer_id=external_id, erased=True), Preferences(),
                     ConsentState({}))


def consent_entries(session: Session, external_id: str) -> list[ConsentEntry]:
    """The customer's ledger as plain entries in the order the hub recorded them (row id);
    `at` is the client's claimed time where one was given (evidence only)."""
    rows = session.scalars(
        select(ConsentRecord).where(ConsentRecord.customer_id == external_id)
        .order_by(ConsentRecord.id)
    )
    return [
        ConsentEntry(r.purpose, r.channel, ConsentAction(r.action),
                     r.claimed_at or r.recorded_at, r.id, r.legal_basis, r.source,
                     r.text_version, r.recorded_at)
        for r in rows
    ]


def to_profile(customer: Customer, subscriptions: list[PushSubscriptionRow] | None = None
               ) -> Profile:
    """The resolver's view of a stored customer."""
    return Profile(
        customer_id=customer.external_id,
        locale=customer.locale,
        tone=customer.tone,
        time_zone=customer.time_zone,
        segment=customer.segment,
        name=customer.name,
        phone=customer.phone,
        email=customer.email,
        phone_verified=customer.phone_verified,
        email_verified=customer.email_verified,
        push_subscriptions=tuple(PushSubscription(s.endpoint, s.p256dh, s.auth)
                                 for s in subscriptions or ()),
    )


def load_recipient(session: Session, customer: Customer) -> Recipient:
    """Profile, preferences and derived consent state of a stored customer."""
    profile = to_profile(customer, active_push_subscriptions(session, customer))
    return Recipient(
        without_suppressed(session, profile),  # channels: dead or opted-out addresses
        preferences_from_json(customer.preferences),
        derive_state(consent_entries(session, customer.external_id)),
    )
