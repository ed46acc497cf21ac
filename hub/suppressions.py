"""Addresses the hub must not use on a channel: dead (invalid number, hard bounce) or opted
out at the provider (SMS STOP). Rows are lifted, never deleted, so the history stays."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.models import ChannelSuppression
from preferences import Profile


def suppress(session: Session, channel: str, address: str, reason: str, source: str,
             detail: str | None = None) -> None:
    """Adds an active suppression unless one exists."""
    if not is_suppressed(session, channel, address):
        session.add(ChannelSuppression(channel=channel, address=address, reason=reason,
                                       source=source, detail=detail))


def lift(session: Session, channel: str, address: str) -> None:
    """Lifts the active suppressions of an address (the recipient opted back in)."""
    session.execute(
        update(ChannelSuppression)
        .where(ChannelSuppression.channel == channel, ChannelSuppression.address == address,
               ChannelSuppression.lifted_at.is_(None))
        .values(lifted_at=utcnow()))


def is_suppressed(session: Session, channel: str, address: str) -> bool:
    """True while an address has an unlifted suppression on the channel."""
    return session.scalar(
        select(ChannelSuppression.id).where(
            ChannelSuppression.channel == channel, ChannelSuppression.address == address,
            ChannelSuppression.lifted_at.is_(None)).limit(1)) is not None


def without_suppressed(session: Session, profile: Profile) -> Profile:
    """The profile minus suppressed phone/e-mail (the resolver then skips with no_address)."""
    changes: dict[str, None] = {}
    if profile.phone and is_suppressed(session, "sms", profile.phone):
        changes["phone"] = None
    if profile.email and is_suppressed(session, "email", profile.email):
        changes["email"] = None
    return dataclasses.replace(profile, **changes) if changes else profile  # type: ignore[arg-type]
