"""Customer profiles in the store: inline upserts from events, erasure tombstones, push
subscriptions, and the resolver's plain view of a stored customer."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.devices import app_devices
from hub.logs import get_logger
from hub.models import (
    DEFAULT_TENANT,
    ConsentRecord,
    Customer,
    CustomerTombstone,
    PushSubscriptionRow,
)
from hub.settings import Settings
from hub.suppressions import without_suppressed
from hub.traits import MAX_KEYS as MAX_TRAITS
from preferences import (
    AddressError,
    AppDevice,
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
__all__ = ["DEFAULT_TENANT", "customer_key", "get_customer", "upsert_inline"]

_PLAIN_FIELDS = ("name", "tone", "segment")


def tombstone_key(settings: Settings) -> str:
    """The key of erasure digests (tombstone_key, else secret_key)."""
    secret = settings.tombstone_key or settings.secret_key
    return secret.get_secret_value()


def customer_key(secret: str, tenant: str, external_id: str) -> str:
    """The pseudonymous key of a customer (HMAC of tenant and external id): what throttle
    counters, parcel ledgers and digest holds are keyed by, and what logs name, so none of
    them holds an external id in clear and erasure can delete by it."""
    message = f"tenant:{tenant}\x1fcustomer:{external_id}".encode()
    return "ck" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def tombstone_digest(key: str, external_id: str) -> str:
    """Keyed, non-reversible digest of an external id: all that erasure keeps."""
    return hmac.new(key.encode(), f"customer:{external_id}".encode(), hashlib.sha256).hexdigest()


def pseudonym(digest: str) -> str:
    """What replaces an erased customer's id in events and notifications."""
    return f"erased-{digest[:20]}"


def is_erased(session: Session, tenant: str, key: str, external_id: str) -> bool:
    """True when the tenant's customer was erased (a tombstone exists)."""
    digest = tombstone_digest(key, external_id)
    return session.scalar(
        select(CustomerTombstone.id).where(CustomerTombstone.tenant == tenant,
                                           CustomerTombstone.digest == digest)
    ) is not None


def get_customer(session: Session, tenant: str, external_id: str) -> Customer | None:
    """The tenant's customer with this external id (another tenant's is invisible)."""
    return session.scalar(select(Customer).where(Customer.tenant == tenant,
                                                 Customer.external_id == external_id))


def upsert_inline(session: Session, tenant: str, ref: dict[str, Any], key: str, *,
                  occurred_at: datetime | None = None) -> Customer | None:
    """Creates the tenant's customer named by an event, or updates it with the inline
    contact details if they are newer than the profile's (`occurred_at`, the event's time;
    None applies them only to a new profile); None when the customer was erased."""
    if is_erased(session, tenant, key, ref["id"]):
        return None
    customer = get_customer(session, tenant, ref["id"])
    if customer is None:
        customer = Customer(tenant=tenant, external_id=ref["id"], preferences={})
        try:
            with session.begin_nested():
                session.add(customer)
        except IntegrityError:  # created concurrently by another worker
            customer = session.scalars(select(Customer).where(
                Customer.tenant == tenant, Customer.external_id == ref["id"])).one()
    if inline_is_newer(customer, occurred_at):
        apply_inline(customer, ref, customer_key(key, tenant, ref["id"]))
        customer.details_at = min(occurred_at or utcnow(), utcnow())
    return customer


def inline_is_newer(customer: Customer, occurred_at: datetime | None) -> bool:
    """Whether an event's inline details may change the profile: only when nothing newer
    (a later event, or any API change, which is stamped with its request time) was applied.
    A retried job has the same occurred_at, so its details apply once."""
    if customer.details_at is None:
        return True
    return occurred_at is not None and occurred_at > customer.details_at


def touch_details(customer: Customer) -> None:
    """Marks an API change of the contact details: newer than any earlier event."""
    customer.details_at = utcnow()


def apply_inline(customer: Customer, ref: dict[str, Any], ckey: str) -> None:
    """Copies usable inline details; invalid ones are ignored (logged with the customer key,
    never the value or the external id)."""
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
        log.warning("inline_detail_ignored", customer=ckey,
                    problem=str(exc.problem))
    if ref.get("email"):
        set_email(customer, ref["email"], verified=None)
    if ref.get("traits"):
        merged = {**(customer.traits or {}), **ref["traits"]}
        if len(merged) <= MAX_TRAITS:
            customer.traits = merged
        else:
            log.warning("inline_traits_ignored", customer=ckey, keys=len(merged))


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


class EndpointTaken(Exception):
    """The push endpoint is registered to another customer (of any tenant)."""


def save_push_subscription(
    session: Session, customer: Customer, endpoint: str, p256dh: str, auth: str,
    expiration_time: Any = None,
) -> PushSubscriptionRow:
    """Adds (or re-activates) the customer's subscription with this endpoint.

    An endpoint is one browser's subscription, so it belongs to one customer: one held by
    another customer raises EndpointTaken rather than moving silently (its owner, or their
    erasure, must remove it first)."""
    row = session.scalar(
        select(PushSubscriptionRow).where(PushSubscriptionRow.endpoint == endpoint)
    )
    if row is not None and row.customer_pk != customer.id:
        raise EndpointTaken(endpoint)
    if row is None:
        row = PushSubscriptionRow(tenant=customer.tenant, customer_pk=customer.id,
                                  endpoint=endpoint, p256dh=p256dh, auth=auth,
                                  expiration_time=expiration_time)
        session.add(row)
    else:
        row.p256dh, row.auth = p256dh, auth
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


def find_customers_by_phone(session: Session, tenant: str, phone: str) -> list[str]:
    """External ids of the tenant's customers with this number (for an inbound SMS STOP)."""
    try:
        phone = normalize_phone(phone)
    except AddressError:
        return []
    return list(session.scalars(select(Customer.external_id).where(
        Customer.tenant == tenant, Customer.phone == phone)))


@dataclass(frozen=True, slots=True)
class Recipient:
    """Everything the resolver reads about one customer."""

    profile: Profile
    preferences: Preferences
    consents: ConsentState
    customer_key: str = ""  # customer_key(...): what the limiter counts by
    tenant: str = DEFAULT_TENANT


def erased_recipient(external_id: str, ckey: str = "") -> Recipient:
    """The stand-in for an erased customer: every route is skipped with `erased`."""
    return Recipient(Profile(customer_id=external_id, erased=True), Preferences(),
                     ConsentState({}), ckey)


def consent_entries(session: Session, tenant: str, external_id: str) -> list[ConsentEntry]:
    """The tenant's customer's ledger as plain entries in the order the hub recorded them
    (row id); `at` is the client's claimed time where one was given (evidence only)."""
    rows = session.scalars(
        select(ConsentRecord).where(ConsentRecord.tenant == tenant,
                                    ConsentRecord.customer_id == external_id)
        .order_by(ConsentRecord.id)
    )
    return [
        ConsentEntry(r.purpose, r.channel, ConsentAction(r.action),
                     r.claimed_at or r.recorded_at, r.id, r.legal_basis, r.source,
                     r.text_version, r.recorded_at)
        for r in rows
    ]


def to_profile(customer: Customer, subscriptions: list[PushSubscriptionRow] | None = None,
               devices: tuple[AppDevice, ...] = (), has_app: bool = False) -> Profile:
    """The resolver's view of a stored customer (`devices`: active app installations)."""
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
        devices=devices,
        has_app=has_app or bool(devices),
    )


def load_recipient(session: Session, customer: Customer, key: str) -> Recipient:
    """Profile, preferences, derived consent state and customer key of a stored customer
    (`key`: tombstone_key(settings), which also keys suppressions and customer keys)."""
    devices, has_app = app_devices(session, [customer.id])
    profile = to_profile(customer, active_push_subscriptions(session, customer),
                         devices.get(customer.id, ()), customer.id in has_app)
    return Recipient(
        without_suppressed(session, customer.tenant, key, profile),  # dead or opted out
        preferences_from_json(customer.preferences),
        derive_state(consent_entries(session, customer.tenant, customer.external_id)),
        customer_key(key, customer.tenant, customer.external_id),
        customer.tenant,
    )


# --- the fence between an erasure and a send in flight ---------------------------------


def alive_customers(session: Session, key: str, wanted: set[tuple[str, str]]
                    ) -> set[tuple[str, str]]:
    """Which (tenant, external id) still exist unerased. Called by the engine in the
    transaction that opens send records: on PostgreSQL the rows are held FOR KEY SHARE
    until it commits, and `hub.gdpr.erase` locks the row FOR UPDATE before it writes the
    tombstone, so each erasure is ordered before (the send is skipped) or after (the erasure
    waits for the send record to settle) every opening; SQLite serialises the two writers."""
    if not wanted:
        return set()
    conn = session.connection()
    query = _EXISTING_LOCKED if conn.dialect.name == "postgresql" else _EXISTING
    found = set(conn.execute(query, {"b_keys": list(wanted)}).tuples())
    return found - tombstoned(session, key, found)


def tombstoned(session: Session, key: str, ids: Iterable[tuple[str, str]]
               ) -> set[tuple[str, str]]:
    """Which of these (tenant, external id) were erased (their tombstone exists)."""
    digests = {(t, tombstone_digest(key, i)): (t, i) for t, i in ids}
    if not digests:
        return set()
    return {digests[row] for row in session.connection().execute(
        _TOMBSTONES, {"b_keys": list(digests)}).tuples()}


# Built once: the engine runs these for every batch. Row-value IN on (tenant, …): the unique
# indexes lead with the tenant.
_EXISTING = select(Customer.tenant, Customer.external_id).where(
    tuple_(Customer.tenant, Customer.external_id).in_(bindparam("b_keys", expanding=True)))
_EXISTING_LOCKED = _EXISTING.with_for_update(key_share=True)
_TOMBSTONES = select(CustomerTombstone.tenant, CustomerTombstone.digest).where(
    tuple_(CustomerTombstone.tenant, CustomerTombstone.digest).in_(
        bindparam("b_keys", expanding=True)))
