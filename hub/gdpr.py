"""GDPR: export everything held about a customer, erase it (leaving only a tombstone), and
purge rendered bodies, event payloads and inbox items past the retention period."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, null, select, update
from sqlalchemy.orm import Session

from hub import activity
from hub.customers import (
    consent_entries,
    customer_key,
    get_customer,
    is_erased,
    pseudonym,
    tombstone_digest,
)
from hub.db import Database, utcnow
from hub.devices import device_json, devices_of
from hub.feedback import export_feedback, forget_feedback
from hub.inbox import export_inbox, forget_app, purge_inbox
from hub.logs import get_logger
from hub.models import (
    Campaign,
    CampaignRecipient,
    ConsentRecord,
    Customer,
    CustomerTombstone,
    Decision,
    Device,
    Event,
    FollowupTimer,
    Notification,
    OutboxJob,
    PushSubscriptionRow,
)
from hub.privacy_stores import (
    export_throttling,
    forget_inbound_keywords,
    forget_throttling,
    inbound_keywords_json,
    purge_digest_holds,
    suppressions_json,
)
from hub.settings import Settings
from hub.suppressions import forget_addresses
from preferences import (
    CHANNELS,
    SkipReason,
    derive_state,
    preferences_from_json,
    preferences_to_json,
)

log = get_logger("gdpr")


def export_customer(session: Session, tenant: str, key: str, external_id: str
                    ) -> dict[str, Any] | None:
    """Everything the tenant holds about the customer as JSON-ready data (profile, consents,
    events, notifications, suppressions, inbound keywords, limiter state); None if unknown."""
    customer = get_customer(session, tenant, external_id)
    if customer is None:
        return None
    subs = session.scalars(
        select(PushSubscriptionRow).where(PushSubscriptionRow.customer_pk == customer.id)
        .order_by(PushSubscriptionRow.id)
    )
    entries = consent_entries(session, tenant, external_id)
    event_pks = _event_pks(session, tenant, external_id)
    events = session.scalars(select(Event).where(Event.id.in_(event_pks)).order_by(Event.id))
    notes = list(session.scalars(select(Notification).where(Notification.event_pk.in_(event_pks))
                                 .order_by(Notification.id)))
    addresses = _addresses(customer, notes)
    return {
        "customer_id": external_id,
        "tenant": tenant,
        "exported_at": utcnow().isoformat(),
        "profile": {
            "name": customer.name, "locale": customer.locale, "tone": customer.tone,
            "time_zone": customer.time_zone, "segment": customer.segment,
            "traits": customer.traits or {},
            "created_at": customer.created_at.isoformat(),
            "updated_at": customer.updated_at.isoformat(),
        },
        "addresses": {
            "phone": customer.phone, "phone_verified": customer.phone_verified,
            "email": customer.email, "email_verified": customer.email_verified,
            "push_subscriptions": [
                {"endpoint": s.endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth},
                 "active": s.active, "deactivated_reason": s.deactivated_reason,
                 "created_at": s.created_at.isoformat()} for s in subs
            ],
            # the carrier's app installations, with their full push tokens
            "devices": [device_json(d, full_token=True) for d in devices_of(session, customer)],
        },
        "preferences": {**preferences_to_json(preferences_from_json(customer.preferences)),
                        "throttling": (customer.preferences or {}).get("throttling")},
        "consents": {
            "history": [consent_json(e) for e in entries],
            "state": state_json(entries),
        },
        "events": [
            {"event_id": e.event_id, "producer": e.producer, "type": e.type,
             "occurred_at": e.occurred_at.isoformat(), "payload": e.payload} for e in events
        ],
        "notifications": [
            {"event_type": n.event_type, "channel": n.channel, "address": n.address,
             "status": n.status, "locale": n.locale, "content": n.content,
             "created_at": n.created_at.isoformat()} for n in notes
        ],
        "suppressions": suppressions_json(session, tenant, key, addresses),
        "inbound_keywords": inbound_keywords_json(session, tenant, key, addresses),
        "throttling": export_throttling(session, customer_key(key, tenant, external_id)),
        "followups": [
            {"rule": t.rule, "type": t.send_type, "offset": t.offset,
             "fire_at": t.fire_at.isoformat(), "state": t.state, "reason": t.reason}
            for t in session.scalars(select(FollowupTimer).where(
                FollowupTimer.tenant == tenant,
                FollowupTimer.customer_key == customer_key(key, tenant, external_id)))
        ],
        "feedback": export_feedback(session, customer_key(key, tenant, external_id)),
        **export_inbox(session, customer.id),  # the carrier's app: its inbox items
        "marketing": activity.export_json(session, customer.id),  # issue 13
        "campaigns": [  # issue 13: the campaigns that picked the customer, and the group
            {"campaign_id": r.campaign_id, "name": name, "variant": r.variant,
             "state": r.state, "send_at": r.send_at.isoformat()}
            for r, name in session.execute(
                select(CampaignRecipient, Campaign.name)
                .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
                .where(CampaignRecipient.customer_pk == customer.id)
                .order_by(CampaignRecipient.id)).tuples()
        ],
    }


def _event_pks(session: Session, tenant: str, external_id: str) -> list[int]:
    return list(session.scalars(select(Event.id).where(
        Event.tenant == tenant, Event.customer_id == external_id)))


def _addresses(customer: Any, notes: list[Notification]) -> dict[str, set[str]]:
    """Every phone and e-mail address the customer has or was sent to, per channel."""
    found: dict[str, set[str]] = {"sms": set(), "email": set()}
    if customer is not None and customer.phone:
        found["sms"].add(customer.phone)
    if customer is not None and customer.email:
        found["email"].add(customer.email)
    for note in notes:
        if note.address and note.channel in found:
            found[note.channel].add(note.address)
    return found


def consent_json(entry: Any) -> dict[str, Any]:
    """One ledger entry as JSON."""
    return {"id": entry.sequence, "purpose": entry.purpose, "channel": entry.channel,
            "action": str(entry.action), "legal_basis": entry.legal_basis,
            "source": entry.source, "text_version": entry.text_version,
            "at": entry.at.isoformat(),
            "recorded_at": entry.recorded_at.isoformat() if entry.recorded_at else None}


def state_json(entries: list[Any]) -> list[dict[str, str]]:
    """The derived current state as a list of {purpose, channel, status}."""
    state = derive_state(entries)
    return [{"purpose": p, "channel": c, "status": str(a)}
            for (p, c), a in sorted(state.latest.items())]


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure found: whether anything was held, the customer key (to forget the
    limiter's Redis/memory state) and what outboxes outside the store must scrub."""

    held: bool
    customer_key: str
    addresses: frozenset[str]
    send_keys: frozenset[str]


def erase_customer(session: Session, tenant: str, key: str, external_id: str) -> Erasure:
    """Deletes the tenant's customer's personal data from every table and leaves a
    tombstone, so later events for this id are skipped (`erased`). Idempotent.

    Suppressions and inbound keywords keep only the keyed digest of the address (a number
    that texted STOP is still never texted); limiter rows (keyed by the customer key) go.
    `erase` orders this after any send in flight (see there)."""
    digest = tombstone_digest(key, external_id)
    alias, ckey = pseudonym(digest), customer_key(key, tenant, external_id)
    customer = get_customer(session, tenant, external_id)
    held = customer is not None
    endpoints: set[str] = set()
    if customer is not None:
        endpoints = set(session.scalars(select(PushSubscriptionRow.endpoint).where(
            PushSubscriptionRow.customer_pk == customer.id)))
        endpoints |= set(session.scalars(select(Device.token).where(  # app push tokens
            Device.customer_pk == customer.id)))
        session.delete(customer)  # first: waits for a send holding the row (PostgreSQL)
        session.flush()
        session.execute(delete(PushSubscriptionRow)
                        .where(PushSubscriptionRow.customer_pk == customer.id))
        forget_app(session, customer.id)  # app devices and inbox items
    if session.scalar(select(CustomerTombstone.id).where(
            CustomerTombstone.tenant == tenant, CustomerTombstone.digest == digest)) is None:
        session.add(CustomerTombstone(tenant=tenant, digest=digest))
    session.flush()
    held |= bool(session.execute(delete(ConsentRecord).where(
        ConsentRecord.tenant == tenant, ConsentRecord.customer_id == external_id)).rowcount)
    event_pks = _event_pks(session, tenant, external_id)
    notes = list(session.scalars(select(Notification).where(
        Notification.event_pk.in_(event_pks))))
    addresses = _addresses(customer, notes)
    send_keys = frozenset(n.idempotency_key for n in notes)
    held |= bool(event_pks) | _scrub_events(session, event_pks, notes, alias)
    held |= bool(forget_addresses(session, tenant, key, {
        channel: address for channel, found in addresses.items() for address in found}))
    held |= bool(forget_inbound_keywords(session, tenant, key, addresses))
    held |= bool(forget_throttling(session, ckey))
    # follow-up timers not yet fired are moot, and every timer names the customer's key
    session.execute(delete(FollowupTimer).where(FollowupTimer.tenant == tenant,
                                                FollowupTimer.customer_key == ckey))
    held |= bool(forget_feedback(session, ckey))  # comments go; scores stay, unlinked
    log.info("customer_erased", tombstone=digest[:12], customer=ckey, held=held)
    everything = set(endpoints).union(*addresses.values())
    return Erasure(held, ckey, frozenset(everything), send_keys)


class _Unknown(Exception):
    """Nothing held and never erased: roll back the tombstone."""


def erase(db: Database, tenant: str, key: str, external_id: str,
          in_flight_seconds: float = 15.0) -> Erasure | None:
    """Erases the tenant's customer; None (and nothing written) when the tenant holds nothing
    about the id and never erased it, so another tenant's customer answers 404 like an
    unknown one.

    A send in flight either completes before the erasure and is then scrubbed, or never
    happens: first the tombstone is committed under the customer row's lock (the engine
    opens send records only for customers it finds unerased under a share lock of that row,
    `hub.customers.alive_customers`), then the erasure waits up to `in_flight_seconds` (the
    longest provider call) for the customer's open send records to settle, then scrubs."""
    with db.transaction() as session:
        before = is_erased(session, tenant, key, external_id)
        query = select(Customer).where(Customer.tenant == tenant,
                                       Customer.external_id == external_id)
        if db.dialect == "postgresql":
            query = query.with_for_update()
        marked = not before and session.scalar(query) is not None
        if marked:
            session.add(CustomerTombstone(tenant=tenant, digest=tombstone_digest(key, external_id)))
    if marked:
        _wait_for_sends(db, tenant, external_id, in_flight_seconds)
    try:
        with db.transaction() as session:
            erasure = erase_customer(session, tenant, key, external_id)
            if not erasure.held and not before:
                raise _Unknown
            return erasure
    except _Unknown:
        return None


def _wait_for_sends(db: Database, tenant: str, external_id: str, seconds: float) -> None:
    """Waits (bounded) until none of the customer's send records is in a provider call."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with db.sessions() as session:
            busy = session.scalar(
                select(Notification.id).join(Event, Event.id == Notification.event_pk)
                .where(Event.tenant == tenant, Notification.customer_id == external_id,
                       Notification.status == "sending",
                       Notification.updated_at > utcnow() - timedelta(seconds=seconds))
                .limit(1))
        if busy is None:
            return
        time.sleep(0.05)
    log.warning("erasure_send_still_open", seconds=seconds)


def _scrub_events(session: Session, event_pks: list[int], notes: list[Notification],
                  alias: str) -> bool:
    if event_pks:
        session.execute(update(Event).where(Event.id.in_(event_pks))
                        .values(payload=null(), customer_id=alias))
        session.execute(update(Decision).where(Decision.event_pk.in_(event_pks))
                        .values(detail=None))
        session.execute(update(OutboxJob).where(OutboxJob.event_pk.in_(event_pks))
                        .values(last_error=None))
        _settle_waiting_jobs(session, event_pks)
    for note in notes:
        note.customer_id, note.address, note.content, note.error = alias, None, null(), None
        # The key embeds a short hash of the address: replace it so it cannot be matched.
        note.idempotency_key = f"erased:{note.id}"
        note.history = [{"status": h.get("status"), "at": h.get("at")} for h in note.history]
    return bool(notes)


def _settle_waiting_jobs(session: Session, event_pks: list[int]) -> None:
    """Jobs still waiting lost their payload: finish them here with an `erased` decision."""
    waiting = list(session.scalars(select(OutboxJob).where(
        OutboxJob.event_pk.in_(event_pks), OutboxJob.state == "pending")))
    for job in waiting:
        job.state, job.lease_owner, job.lease_until = "done", None, None
        session.execute(delete(Decision).where(Decision.event_pk == job.event_pk))
        session.add_all(Decision(event_pk=job.event_pk, channel=channel, outcome="skipped",
                                 reason=SkipReason.ERASED) for channel in CHANNELS)
    if waiting:
        session.execute(update(Event).where(Event.id.in_([j.event_pk for j in waiting]))
                        .values(state="processed"))


def scrub_erased_event(event: Event, key: str) -> None:
    """An event that arrived for an erased customer keeps no personal data either."""
    event.customer_id = pseudonym(tombstone_digest(key, event.customer_id))
    event.payload = null()  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class PurgeReport:
    cutoff: datetime
    bodies: int
    payloads: int
    digest_holds: int = 0
    inbox_items: int = 0


def purge_expired(db: Database, settings: Settings, now: datetime | None = None) -> PurgeReport:
    """Clears rendered bodies and event payloads older than `retention_days` (events still
    waiting for the worker, or with follow-up timers still to fire, keep theirs) and
    deletes settled follow-up timers and in-app inbox items as old."""
    cutoff = (now or utcnow()) - timedelta(days=settings.retention_days)
    waiting = exists().where(OutboxJob.event_pk == Event.id, OutboxJob.state == "pending")
    timers = exists().where(FollowupTimer.trigger_event_pk == Event.id,
                            FollowupTimer.state == "scheduled")
    with db.transaction() as session:
        bodies = session.execute(
            update(Notification)
            .where(Notification.created_at < cutoff, Notification.content.is_not(None))
            .values(content=null())
        ).rowcount
        payloads = session.execute(
            update(Event)
            .where(Event.received_at < cutoff, Event.payload.is_not(None), ~waiting, ~timers)
            .values(payload=null())
        ).rowcount
        session.execute(delete(FollowupTimer).where(FollowupTimer.state != "scheduled",
                                                    FollowupTimer.updated_at < cutoff))
        holds = purge_digest_holds(session, cutoff)
        inbox = purge_inbox(session, cutoff)
    report = PurgeReport(cutoff, bodies or 0, payloads or 0, holds, inbox)
    log.info("retention_purge", cutoff=cutoff.isoformat(), bodies=report.bodies,
             payloads=report.payloads, digest_holds=holds, inbox_items=inbox)
    return report


class DailyPurge:
    """Runs `purge_expired` at most once a day from a long-running loop (it is idempotent,
    so several workers each running it daily is harmless)."""

    def __init__(self, db: Database, settings: Settings, every_seconds: float = 86_400,
                 housekeeping: Callable[[], object] | None = None) -> None:
        self.db, self.settings, self.every = db, settings, every_seconds
        self.housekeeping = housekeeping  # e.g. the limiter forgetting old counters
        self._next = 0.0  # monotonic: the first call purges

    def run_if_due(self) -> PurgeReport | None:
        """Purges when due; never raises (a failed purge is logged and retried next day)."""
        if time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self.every
        try:
            if self.housekeeping is not None:
                self.housekeeping()
            return purge_expired(self.db, self.settings)
        except Exception:
            log.exception("retention_purge_error")
            return None


def forget_outside_store(erasure: Erasure, limiter: object,
                         transports: dict[str, object]) -> None:
    """The rest of an erasure, after its transaction committed: the limiter's Redis (or
    memory) state under the customer key, and outboxes kept by channels (console file)."""
    forget = getattr(limiter, "forget", None)
    if forget is not None:
        forget(erasure.customer_key)
    seen: set[int] = set()
    for adapter in transports.values():
        inner = getattr(adapter, "adapter", adapter)  # behind a circuit breaker
        scrub = getattr(inner, "forget", None)
        if scrub is not None and id(inner) not in seen:
            seen.add(id(inner))
            scrub(erasure.addresses, erasure.send_keys)
