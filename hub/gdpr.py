"""GDPR: export everything held about a customer, erase it (leaving only a tombstone), and
purge rendered bodies and event payloads past the retention period."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, null, select, update
from sqlalchemy.orm import Session

from hub.customers import (
    consent_entries,
    get_customer,
    pseudonym,
    tombstone_digest,
)
from hub.db import Database, utcnow
from hub.logs import get_logger
from hub.models import (
    ConsentRecord,
    CustomerTombstone,
    Decision,
    Event,
    Notification,
    OutboxJob,
    PushSubscriptionRow,
)
from hub.settings import Settings
from preferences import (
    CHANNELS,
    SkipReason,
    derive_state,
    preferences_from_json,
    preferences_to_json,
)

log = get_logger("gdpr")


def export_customer(session: Session, external_id: str) -> dict[str, Any] | None:
    """Everything held about the customer as JSON-ready data; None if unknown."""
    customer = get_customer(session, external_id)
    if customer is None:
        return None
    subs = session.scalars(
        select(PushSubscriptionRow).where(PushSubscriptionRow.customer_pk == customer.id)
        .order_by(PushSubscriptionRow.id)
    )
    entries = consent_entries(session, external_id)
    events = session.scalars(
        select(Event).where(Event.customer_id == external_id).order_by(Event.id))
    notes = session.scalars(
        select(Notification).where(Notification.customer_id == external_id)
        .order_by(Notification.id))
    return {
        "customer_id": external_id,
        "exported_at": utcnow().isoformat(),
        "profile": {
            "name": customer.name, "locale": customer.locale, "tone": customer.tone,
            "time_zone": customer.time_zone, "segment": customer.segment,
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
        },
        "preferences": preferences_to_json(preferences_from_json(customer.preferences)),
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
    }


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


def erase_customer(session: Session, key: str, external_id: str) -> bool:
    """Deletes the customer's personal data from every table and leaves a tombstone, so later
    events for this id are skipped (`erased`). Idempotent; True if anything was held."""
    digest = tombstone_digest(key, external_id)
    alias = pseudonym(digest)
    held = False
    customer = get_customer(session, external_id)
    if customer is not None:
        session.execute(delete(PushSubscriptionRow)
                        .where(PushSubscriptionRow.customer_pk == customer.id))
        session.delete(customer)
        held = True
    held |= bool(session.execute(
        delete(ConsentRecord).where(ConsentRecord.customer_id == external_id)).rowcount)
    event_pks = list(session.scalars(select(Event.id).where(Event.customer_id == external_id)))
    if event_pks:
        held = True
        session.execute(update(Event).where(Event.id.in_(event_pks))
                        .values(payload=null(), customer_id=alias))
        session.execute(update(Decision).where(Decision.event_pk.in_(event_pks))
                        .values(detail=None))
        session.execute(update(OutboxJob).where(OutboxJob.event_pk.in_(event_pks))
                        .values(last_error=None))
        _settle_waiting_jobs(session, event_pks)
    notes = session.scalars(select(Notification).where(
        (Notification.customer_id == external_id) | Notification.event_pk.in_(event_pks)))
    for note in notes:
        note.customer_id, note.address, note.content, note.error = alias, None, null(), None
        # The key embeds a short hash of the address: replace it so it cannot be matched.
        note.idempotency_key = f"erased:{note.id}"
        note.history = [{"status": h.get("status"), "at": h.get("at")} for h in note.history]
        held = True
    known = select(CustomerTombstone.id).where(CustomerTombstone.digest == digest)
    if session.scalar(known) is None:
        session.add(CustomerTombstone(digest=digest))
    session.flush()
    log.info("customer_erased", tombstone=digest[:12], held=held)
    return held


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


def purge_expired(db: Database, settings: Settings, now: datetime | None = None) -> PurgeReport:
    """Clears rendered bodies and event payloads older than `retention_days` (events still
    waiting for the worker keep theirs)."""
    cutoff = (now or utcnow()) - timedelta(days=settings.retention_days)
    waiting = exists().where(OutboxJob.event_pk == Event.id, OutboxJob.state == "pending")
    with db.transaction() as session:
        bodies = session.execute(
            update(Notification)
            .where(Notification.created_at < cutoff, Notification.content.is_not(None))
            .values(content=null())
        ).rowcount
        payloads = session.execute(
            update(Event)
            .where(Event.received_at < cutoff, Event.payload.is_not(None), ~waiting)
            .values(payload=null())
        ).rowcount
    report = PurgeReport(cutoff, bodies or 0, payloads or 0)
    log.info("retention_purge", cutoff=cutoff.isoformat(), bodies=report.bodies,
             payloads=report.payloads)
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
