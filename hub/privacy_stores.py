"""The stores besides the customer's own rows that can name a customer, for export and
erasure: suppressions and inbound keywords (addresses; erasure keeps their keyed digest) and
the limiter's SQL tables (keyed by the customer key; erasure deletes them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hub.models import ChannelSuppression, InboundKeyword
from hub.suppressions import address_digest
from throttling.backends.sql_tables import (
    throttle_digest,
    throttle_hits,
    throttle_marks,
    throttle_parcels,
)


def _digests(key: str, addresses: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(channel, address_digest(key, channel, address))
            for channel, found in addresses.items() for address in found]


def suppressions_json(session: Session, tenant: str, key: str,
                      addresses: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The tenant's suppressions of these addresses ({channel: {address}}), for an export."""
    out = []
    for channel, digest in _digests(key, addresses):
        rows = session.scalars(select(ChannelSuppression).where(
            ChannelSuppression.tenant == tenant, ChannelSuppression.channel == channel,
            ChannelSuppression.address_digest == digest).order_by(ChannelSuppression.id))
        out += [{"channel": r.channel, "address": r.address, "reason": r.reason,
                 "source": r.source, "created_at": r.created_at.isoformat(),
                 "lifted_at": r.lifted_at.isoformat() if r.lifted_at else None} for r in rows]
    return out


def inbound_keywords_json(session: Session, tenant: str, key: str,
                          addresses: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The consent keywords these addresses sent the tenant, for an export."""
    out = []
    for channel, digest in _digests(key, addresses):
        rows = session.scalars(select(InboundKeyword).where(
            InboundKeyword.tenant == tenant, InboundKeyword.channel == channel,
            InboundKeyword.address_digest == digest).order_by(InboundKeyword.id))
        out += [{"channel": r.channel, "address": r.address, "keyword": r.keyword,
                 "action": r.action, "provider": r.provider,
                 "received_at": r.received_at.isoformat()} for r in rows]
    return out


def forget_inbound_keywords(session: Session, tenant: str, key: str,
                            addresses: dict[str, set[str]]) -> int:
    """Erasure: clears the address in clear of these keywords (the digest stays, as the
    evidence that this address withdrew consent)."""
    cleared = 0
    for channel, digest in _digests(key, addresses):
        result = session.execute(update(InboundKeyword).where(
            InboundKeyword.tenant == tenant, InboundKeyword.channel == channel,
            InboundKeyword.address_digest == digest).values(address=None))
        cleared += int(getattr(result, "rowcount", 0) or 0)
    return cleared


def _hits_of(ckey: str) -> Any:
    return throttle_hits.c.scope_key.like(f"{ckey}|%")  # the customer key is hex: no escapes


def export_throttling(session: Session, ckey: str) -> dict[str, Any]:
    """What the limiter's SQL tables hold under the customer key."""
    parcels = session.execute(select(throttle_parcels).where(
        throttle_parcels.c.customer_id == ckey)).mappings()
    marks = session.execute(select(throttle_marks).where(
        throttle_marks.c.customer_id == ckey)).mappings()
    holds = session.execute(select(throttle_digest).where(
        throttle_digest.c.customer_id == ckey)).mappings()
    hits = session.scalar(select(func.count()).select_from(throttle_hits).where(_hits_of(ckey)))
    return {"customer_key": ckey, "counted_messages": int(hits or 0),
            "parcels": [dict(r) for r in parcels], "marks": [dict(r) for r in marks],
            "digest_holds": [dict(r) for r in holds]}


def forget_throttling(session: Session, ckey: str) -> int:
    """Erasure: deletes the limiter's rows of the customer key; returns how many."""
    gone = 0
    for table in (throttle_parcels, throttle_marks, throttle_digest):
        gone += int(session.execute(delete(table).where(table.c.customer_id == ckey)).rowcount
                    or 0)
    gone += int(session.execute(delete(throttle_hits).where(_hits_of(ckey))).rowcount or 0)
    return gone


def purge_digest_holds(session: Session, cutoff: datetime) -> int:
    """Retention: digest holds due before `cutoff` (never released) are deleted."""
    cutoff_ms = int(cutoff.timestamp() * 1000)
    result = session.execute(delete(throttle_digest).where(throttle_digest.c.due_ms < cutoff_ms))
    return int(result.rowcount or 0)
