"""The engine's load step: a batch of jobs, their events, customers, consents, push
subscriptions, app devices and suppressions in a handful of queries (one write transaction, because an
event's inline contact details update the profile)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, null, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from hub.activity import ParcelSeen, delivery_method, note_parcels
from hub.customers import (
    Recipient,
    apply_inline,
    customer_key,
    erased_recipient,
    inline_is_newer,
    pseudonym,
    to_profile,
    tombstone_digest,
    tombstoned,
)
from hub.db import utcnow
from hub.devices import app_devices
from hub.events import EventType, event_types
from hub.models import (
    ChannelSuppression,
    ConsentRecord,
    Customer,
    Event,
    OutboxJob,
    PushSubscriptionRow,
)
from hub.suppressions import address_digest
from preferences import ConsentEntry, derive_state, preferences_from_json
from preferences.consent import ConsentAction
from preferences.model import Frequency, Preferences

OUTBOX, EVENTS = (cast(Table, m.__table__) for m in (OutboxJob, Event))


@dataclass(frozen=True, slots=True)
class Loaded:
    """One job's event and recipient, as the decide and render steps read them."""

    event_pk: int
    payload: dict[str, Any]
    recipient: Recipient
    throttling: dict[str, Any] = field(default_factory=dict)  # the limiter's overrides

    @property
    def etype(self) -> EventType:
        return event_types()[self.payload["type"]]


@dataclass(frozen=True, slots=True)
class JobRow:
    """The outbox row of a held job; `loaded` is None when its event has nothing to send."""

    id: int
    event_pk: int
    attempts: int
    created_at: datetime
    loaded: Loaded | None


def load_batch(session: Session, owner: str, job_ids: list[int], erasure_key: str
               ) -> list[JobRow]:
    """Jobs `owner` still holds, with everything the resolver, limiter and renderer need."""
    conn = session.connection()
    jobs = conn.execute(_HELD_JOBS, {"b_ids": job_ids, "b_owner": owner}).all()
    events = {j.event_pk: j for j in jobs}
    payloads = {pk: e.payload for pk, e in events.items()}
    refs = [Inline(e.tenant, e.payload["customer"], e.occurred_at)
            for e in events.values() if e.payload is not None]
    customers = load_customers(session, refs, erasure_key)
    recipients = _recipients(session, [c for c in customers.values() if c is not None],
                             erasure_key)

    def who(pk: int) -> tuple[str, str]:
        return events[pk].tenant, payloads[pk]["customer"]["id"]

    erased = [pk for pk, p in payloads.items() if p is not None and customers.get(who(pk)) is None]
    if erased:  # keep nothing personal of an event for an erased customer
        conn.execute(_FORGET_PAYLOAD, [
            {"b_id": pk, "b_pseudonym": pseudonym(tombstone_digest(erasure_key, who(pk)[1]))}
            for pk in erased])
    conn.execute(_PROCESSING, {"b_ids": list(payloads)})
    note_parcels(session, _parcels_seen(events, customers))  # activity (hub.activity)
    rows = []
    for job in jobs:
        payload = payloads.get(job.event_pk)
        loaded = None
        if payload is not None:
            customer = customers.get(who(job.event_pk))
            tenant, external_id = who(job.event_pk)
            recipient, raw = ((recipients[tenant, external_id], customer.preferences or {})
                              if customer is not None
                              else (erased_recipient(external_id, customer_key(
                                  erasure_key, tenant, external_id)), {}))
            loaded = Loaded(job.event_pk, payload, recipient,
                            throttle_overrides(recipient.preferences, raw))
        rows.append(JobRow(job.id, job.event_pk, job.attempts, job.created_at, loaded))
    return rows


def _parcels_seen(events: dict[int, Any], customers: dict[tuple[str, str], Customer | None]
                  ) -> list[ParcelSeen]:
    """The parcels of a batch's events, for the customers who still exist."""
    seen = []
    for event in events.values():
        payload = event.payload or {}
        tracking = (payload.get("parcel") or {}).get("tracking_number")
        customer = customers.get((event.tenant, (payload.get("customer") or {}).get("id")))
        if tracking and customer is not None:
            seen.append(ParcelSeen(customer.id, event.tenant, tracking, event.occurred_at,
                                   delivery_method(payload)))
    return seen


@dataclass(frozen=True, slots=True)
class Inline:
    """An event's customer reference: its tenant, inline details and the event's time."""

    tenant: str
    ref: dict[str, Any]
    occurred_at: datetime


def load_customers(session: Session, refs: list[Inline], erasure_key: str
                   ) -> dict[tuple[str, str], Customer | None]:
    """(tenant, external id) → profile with the events' inline details applied where they
    are newer than the profile's (oldest event first, so a retry never reverts a later
    change); None for an erased customer. The one place customers are looked up for a batch."""
    ids = list(dict.fromkeys((r.tenant, r.ref["id"]) for r in refs))
    erased = tombstoned(session, erasure_key, ids)
    found = {(c.tenant, c.external_id): c for c in session.scalars(_CUSTOMERS, {"b_keys": ids})}
    missing = [k for k in ids if k not in found and k not in erased]
    if missing:  # one INSERT for all new customers; a concurrent creation is simply kept
        dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        found |= {(c.tenant, c.external_id): c for c in session.scalars(
            dialect_insert(Customer).on_conflict_do_nothing(
                index_elements=["tenant", "external_id"]).returning(Customer),
            [{"tenant": t, "external_id": i, "preferences": {}} for t, i in missing])}
        if raced := [k for k in missing if k not in found]:  # created meanwhile elsewhere
            found |= {(c.tenant, c.external_id): c
                      for c in session.scalars(_CUSTOMERS, {"b_keys": raced})}
    out: dict[tuple[str, str], Customer | None] = dict.fromkeys(erased)
    now = utcnow()
    for r in sorted(refs, key=lambda r: r.occurred_at):
        k = (r.tenant, r.ref["id"])
        if k in erased:
            continue
        customer = found[k]
        if inline_is_newer(customer, r.occurred_at):
            apply_inline(customer, r.ref, customer_key(erasure_key, r.tenant, r.ref["id"]))
            customer.details_at = min(r.occurred_at, now)
        out[k] = customer
    session.flush()
    return out


def _recipients(session: Session, customers: list[Customer], erasure_key: str
                ) -> dict[tuple[str, str], Recipient]:
    """Profiles (minus suppressed addresses), preferences and consent states, batched."""
    pks = {c.id: (c.tenant, c.external_id) for c in customers}
    devices, has_app = app_devices(session, list(pks))  # the carrier's app
    subs: dict[int, list[PushSubscriptionRow]] = defaultdict(list)
    for sub in session.scalars(_SUBSCRIPTIONS, {"b_pks": list(pks)}):
        subs[sub.customer_pk].append(sub)
    # the ledger in the order the hub recorded it (row id); a client's `at` is evidence only
    ledgers: dict[tuple[str, str], list[ConsentEntry]] = defaultdict(list)
    wanted = set(pks.values())
    conn = session.connection()
    for r in conn.execute(_LEDGERS, {"b_ids": [i for _, i in pks.values()]}):
        if (r.tenant, r.customer_id) in wanted:
            ledgers[r.tenant, r.customer_id].append(ConsentEntry(
                r.purpose, r.channel, ConsentAction(r.action), r.claimed_at or r.recorded_at,
                r.id, r.legal_basis, r.source, r.text_version, r.recorded_at))
    # suppressions are matched by the keyed digest of the address (erasure clears the clear text)
    digests = {(c.tenant, channel, address_digest(erasure_key, channel, a))
               for c in customers for channel, a in (("sms", c.phone), ("email", c.email)) if a}
    suppressed = set(conn.execute(_SUPPRESSED, {"b_keys": list(digests)}).tuples()
                     ) if digests else set()
    out = {}
    for c in customers:
        profile = to_profile(c, subs.get(c.id), devices.get(c.id, ()), c.id in has_app)
        changes = {k: None for k, channel in (("phone", "sms"), ("email", "email"))
                   if getattr(profile, k) and (c.tenant, channel, address_digest(
                       erasure_key, channel, getattr(profile, k))) in suppressed}
        if changes:  # dead or opted-out addresses: the resolver skips with no_address
            profile = dataclasses.replace(profile, **changes)  # type: ignore[arg-type]
        out[c.tenant, c.external_id] = Recipient(
            profile, preferences_from_json(c.preferences),
            derive_state(ledgers.get((c.tenant, c.external_id), [])),
            customer_key(erasure_key, c.tenant, c.external_id), c.tenant)
    return out


# The load's statements, built once (the engine loads many batches a second, and building a
# statement cost more CPU than running it). Row-value IN on (tenant, …): the unique indexes
# lead with the tenant.
_HELD_JOBS = (
    select(OUTBOX.c.id, OUTBOX.c.event_pk, OUTBOX.c.attempts, OUTBOX.c.created_at,
           EVENTS.c.tenant, EVENTS.c.occurred_at, EVENTS.c.payload)
    .join(EVENTS, EVENTS.c.id == OUTBOX.c.event_pk)
    .where(OUTBOX.c.id.in_(bindparam("b_ids", expanding=True)), OUTBOX.c.state == "pending",
           OUTBOX.c.lease_owner == bindparam("b_owner"))
    .order_by(OUTBOX.c.id))
_FORGET_PAYLOAD = (update(EVENTS).where(EVENTS.c.id == bindparam("b_id"))
                   .values(customer_id=bindparam("b_pseudonym"), payload=null()))
_PROCESSING = (update(EVENTS).where(EVENTS.c.id.in_(bindparam("b_ids", expanding=True)))
               .values(state="processing"))
_CUSTOMERS = select(Customer).where(
    tuple_(Customer.tenant, Customer.external_id).in_(bindparam("b_keys", expanding=True)))
_SUBSCRIPTIONS = (
    select(PushSubscriptionRow)
    .where(PushSubscriptionRow.customer_pk.in_(bindparam("b_pks", expanding=True)),
           PushSubscriptionRow.active)
    .order_by(PushSubscriptionRow.created_at.desc(), PushSubscriptionRow.id.desc()))
_LEDGERS = (select(ConsentRecord.__table__)
            .where(ConsentRecord.customer_id.in_(bindparam("b_ids", expanding=True)))
            .order_by(ConsentRecord.id))
_SUPPRESSED = (
    select(ChannelSuppression.tenant, ChannelSuppression.channel, ChannelSuppression.address_digest)
    .where(tuple_(ChannelSuppression.tenant, ChannelSuppression.channel,
                  ChannelSuppression.address_digest).in_(bindparam("b_keys", expanding=True)),
           ChannelSuppression.lifted_at.is_(None)))


def throttle_overrides(prefs: Preferences, raw: dict[str, Any]) -> dict[str, Any]:
    """The limiter's per-customer overrides from the customer's preferences: their quiet
    hours, the daily digest choice, and any operator-set caps under `throttling`."""
    overrides: dict[str, Any] = {}
    if prefs.quiet_hours is not None:
        overrides["quiet_hours"] = {"enabled": True,
                                    "start": prefs.quiet_hours.start.strftime("%H:%M"),
                                    "end": prefs.quiet_hours.end.strftime("%H:%M")}
    if prefs.frequency is Frequency.DIGEST:
        overrides["digest"] = {"enabled": True}
    overrides.update(raw.get("throttling") or {})
    return overrides
