"""The engine's load step: a batch of jobs, their events, customers, consents, push
subscriptions and suppressions in a handful of queries (one write transaction, because an
event's inline contact details update the profile)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from hub.customers import (
    Recipient,
    apply_inline,
    erased_recipient,
    pseudonym,
    to_profile,
    tombstone_digest,
)
from hub.events import EventType, event_types
from hub.models import (
    ChannelSuppression,
    ConsentRecord,
    Customer,
    CustomerTombstone,
    Event,
    OutboxJob,
    PushSubscriptionRow,
)
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
    jobs = session.execute(
        select(OUTBOX.c.id, OUTBOX.c.event_pk, OUTBOX.c.attempts, OUTBOX.c.created_at)
        .where(OUTBOX.c.id.in_(job_ids), OUTBOX.c.state == "pending", OUTBOX.c.lease_owner == owner)
        .order_by(OUTBOX.c.id)).all()
    payloads = dict(session.execute(
        select(EVENTS.c.id, EVENTS.c.payload).where(EVENTS.c.id.in_([j.event_pk for j in jobs]))).all())
    refs = [p["customer"] for p in payloads.values() if p is not None]
    customers = load_customers(session, refs, erasure_key)
    recipients = _recipients(session, [c for c in customers.values() if c is not None])
    erased = [pk for pk, p in payloads.items()
              if p is not None and customers.get(p["customer"]["id"]) is None]
    for pk in erased:  # keep nothing personal of an event for an erased customer
        digest = tombstone_digest(erasure_key, payloads[pk]["customer"]["id"])
        session.execute(update(EVENTS).where(EVENTS.c.id == pk).values(
            customer_id=pseudonym(digest), payload=null()))
    session.execute(update(EVENTS).where(EVENTS.c.id.in_(list(payloads))).values(state="processing"))
    rows = []
    for job in jobs:
        payload = payloads.get(job.event_pk)
        loaded = None
        if payload is not None:
            customer = customers.get(payload["customer"]["id"])
            recipient, raw = ((recipients[customer.external_id], customer.preferences or {})
                              if customer is not None
                              else (erased_recipient(payload["customer"]["id"]), {}))
            loaded = Loaded(job.event_pk, payload, recipient,
                            throttle_overrides(recipient.preferences, raw))
        rows.append(JobRow(job.id, job.event_pk, job.attempts, job.created_at, loaded))
    return rows


def load_customers(session: Session, refs: list[dict[str, Any]], erasure_key: str
                   ) -> dict[str, Customer | None]:
    """External id → profile with the events' inline details applied (in event order);
    None for an erased customer. The one place customers are looked up for a batch."""
    ids = list(dict.fromkeys(ref["id"] for ref in refs))
    digests = {tombstone_digest(erasure_key, i): i for i in ids}
    erased = {digests[d] for d in session.scalars(
        select(CustomerTombstone.digest).where(CustomerTombstone.digest.in_(list(digests))))}
    found = {c.external_id: c for c in session.scalars(
        select(Customer).where(Customer.external_id.in_(ids)))}
    missing = [i for i in ids if i not in found and i not in erased]
    if missing:  # one INSERT for all new customers; a concurrent creation is simply kept
        dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(dialect_insert(Customer).on_conflict_do_nothing(
            index_elements=["external_id"]), [{"external_id": i, "preferences": {}} for i in missing])
        found |= {c.external_id: c for c in session.scalars(
            select(Customer).where(Customer.external_id.in_(missing)))}
    out: dict[str, Customer | None] = {i: None for i in erased}
    for ref in refs:
        if ref["id"] not in erased:
            apply_inline(found[ref["id"]], ref)
            out[ref["id"]] = found[ref["id"]]
    session.flush()
    return out


def _recipients(session: Session, customers: list[Customer]) -> dict[str, Recipient]:
    """Profiles (minus suppressed addresses), preferences and consent states, batched."""
    pks = {c.id: c.external_id for c in customers}
    subs: dict[int, list[PushSubscriptionRow]] = defaultdict(list)
    for sub in session.scalars(
        select(PushSubscriptionRow)
        .where(PushSubscriptionRow.customer_pk.in_(list(pks)), PushSubscriptionRow.active)
        .order_by(PushSubscriptionRow.created_at.desc(), PushSubscriptionRow.id.desc())):
        subs[sub.customer_pk].append(sub)
    ledgers: dict[str, list[ConsentEntry]] = defaultdict(list)
    for r in session.execute(
        select(ConsentRecord.__table__).where(ConsentRecord.customer_id.in_(list(pks.values())))
        .order_by(ConsentRecord.recorded_at, ConsentRecord.id)):
        ledgers[r.customer_id].append(ConsentEntry(
            r.purpose, r.channel, ConsentAction(r.action), r.recorded_at, r.id, r.legal_basis,
            r.source, r.text_version))
    addresses = [a for c in customers for a in (c.phone, c.email) if a]
    suppressed = set(session.execute(
        select(ChannelSuppression.channel, ChannelSuppression.address)
        .where(ChannelSuppression.address.in_(addresses),
               ChannelSuppression.lifted_at.is_(None))).tuples()) if addresses else set()
    out = {}
    for c in customers:
        profile = to_profile(c, subs.get(c.id))
        changes = {k: None for k, channel in (("phone", "sms"), ("email", "email"))
                   if getattr(profile, k) and (channel, getattr(profile, k)) in suppressed}
        if changes:  # dead or opted-out addresses: the resolver skips with no_address
            profile = dataclasses.replace(profile, **changes)  # type: ignore[arg-type]
        out[c.external_id] = Recipient(profile, preferences_from_json(c.preferences),
                                       derive_state(ledgers.get(c.external_id, [])))
    return out


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
