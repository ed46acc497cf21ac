"""Addresses the hub must not use on a channel: dead (invalid number, hard bounce) or opted
out at the provider (SMS STOP). Rows are lifted, never deleted, so the history stays.

Suppressions are per tenant and looked up by a keyed hash of the address (`address_digest`),
so that erasure can clear the address in clear while the suppression keeps working."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.models import ChannelSuppression
from preferences import Profile


def address_digest(key: str, channel: str, address: str) -> str:
    """Keyed, non-reversible digest of an address on a channel (key: the tombstone key)."""
    message = f"address:{channel}:{address.strip().lower()}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def suppress(session: Session, tenant: str, key: str, channel: str, address: str,
             reason: str, source: str, detail: str | None = None) -> None:
    """Adds an active suppression for the tenant unless one exists."""
    if not is_suppressed(session, tenant, key, channel, address):
        session.add(ChannelSuppression(
            tenant=tenant, channel=channel, address=address,
            address_digest=address_digest(key, channel, address), reason=reason,
            source=source, detail=detail))


def lift(session: Session, tenant: str, key: str, channel: str, address: str) -> None:
    """Lifts the tenant's active suppressions of an address (the recipient opted back in)."""
    session.execute(
        update(ChannelSuppression)
        .where(ChannelSuppression.tenant == tenant, ChannelSuppression.channel == channel,
               ChannelSuppression.address_digest == address_digest(key, channel, address),
               ChannelSuppression.lifted_at.is_(None))
        .values(lifted_at=utcnow()))


def is_suppressed(session: Session, tenant: str, key: str, channel: str, address: str
                  ) -> bool:
    """True while an address has an unlifted suppression on the channel for the tenant."""
    return session.scalar(
        select(ChannelSuppression.id).where(
            ChannelSuppression.tenant == tenant, ChannelSuppression.channel == channel,
            ChannelSuppression.address_digest == address_digest(key, channel, address),
            ChannelSuppression.lifted_at.is_(None)).limit(1)) is not None


def without_suppressed(session: Session, tenant: str, key: str, profile: Profile) -> Profile:
    """The profile minus suppressed phone/e-mail (the resolver then skips with no_address)."""
    changes: dict[str, None] = {}
    if profile.phone and is_suppressed(session, tenant, key, "sms", profile.phone):
        changes["phone"] = None
    if profile.email and is_suppressed(session, tenant, key, "email", profile.email):
        changes["email"] = None
    return dataclasses.replace(profile, **changes) if changes else profile  # type: ignore[arg-type]


def forget_addresses(session: Session, tenant: str, key: str,
                     addresses: dict[str, str]) -> int:
    """Erasure: clears the addresses in clear (and free-text detail) of the tenant's
    suppressions of these {channel: address}; the keyed digest stays and is still honoured."""
    cleared = 0
    for channel, address in addresses.items():
        result = session.execute(
            update(ChannelSuppression)
            .where(ChannelSuppression.tenant == tenant, ChannelSuppression.channel == channel,
                   ChannelSuppression.address_digest == address_digest(key, channel, address))
            .values(address=None, detail=None))
        cleared += int(getattr(result, "rowcount", 0) or 0)
    return cleared
