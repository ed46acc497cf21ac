"""The audiences a campaign sends to (hub.audiences), seen from a campaign: resolve the
public id the API shows, count the audience, walk its members."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audiences
from hub.audience_models import Audience


def resolve(session: Session, tenant: str, public_id: str) -> Audience | None:
    """The tenant's audience by its public id (another tenant's is invisible)."""
    return audiences.get(session, tenant, public_id)


def public_id(session: Session, audience_pk: int) -> str | None:
    return session.scalar(select(Audience.public_id).where(Audience.id == audience_pk))


def members(session: Session, tenant: str, audience_pk: int) -> Iterator[int]:
    """Customer pks of the audience in id order."""
    return audiences.members(session, tenant, audience_pk)
