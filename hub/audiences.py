"""Audiences: saved filters over the tenant's customers, their counts and their members.

`count` answers how many customers match and how many of them are reachable per channel for
the audience's purpose (a usable address and a current consent), in one SQL query.
`members` streams the matching customers' primary keys in id order (keyset pages), for
campaigns. Erased customers have no profile row, so they never match (while an erasure
waits for sends in flight the profile still exists; the engine's erasure fence skips it)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, select, text
from sqlalchemy.orm import Session

from hub.audience_filter import AudienceFilter, parse_filter
from hub.audience_models import Audience
from hub.audience_sql import ACTIVITY, CUSTOMERS, Compiler, reachable
from hub.db import utcnow
from preferences.model import CHANNELS

MEMBER_CHUNK = 2_000
_PG_COUNT_SETTINGS = {"jit": "off", "enable_nestloop": "off", "work_mem": "'64MB'"}


@dataclass(frozen=True, slots=True)
class AudienceCount:
    """How many customers match, and how many of them each channel can reach."""

    matched: int
    reachable: dict[str, int]


def _source(after: int = 0) -> Any:
    """Customers with their activity; `after` repeats a page's `id > after` on the activity
    side, so a merge join starts there instead of at the first row (the planner does not
    carry the bound across an outer join)."""
    return CUSTOMERS.outerjoin(ACTIVITY, (ACTIVITY.c.customer_pk == CUSTOMERS.c.id)
                               & (ACTIVITY.c.customer_pk > after))


def _where(session: Session, tenant: str, audience: AudienceFilter) -> Any:
    dialect = session.get_bind().dialect.name
    return (CUSTOMERS.c.tenant == tenant) & Compiler(dialect, utcnow()).where(audience)


def count(session: Session, tenant: str, filter: AudienceFilter,
          purpose: str = "marketing") -> AudienceCount:
    """Matched and reachable-per-channel counts of the tenant's customers (one query)."""
    if session.get_bind().dialect.name == "postgresql":
        # A count reads most of both tables once. The planner cannot estimate trait tests
        # (JSON expressions) and would probe the activity index per customer for a filter
        # it wrongly thinks is selective; a hash join in memory bounds the worst case, and
        # compiling the cheap expressions (JIT) costs more than it saves.
        for setting in _PG_COUNT_SETTINGS:
            session.execute(text(f"SET LOCAL {setting} = {_PG_COUNT_SETTINGS[setting]}"))
    columns = [func.count().label("matched")] + [
        func.coalesce(func.sum(func.cast(reachable(purpose, ch), Integer)), 0).label(ch)
        for ch in CHANNELS]
    row = session.execute(select(*columns).select_from(_source())
                          .where(_where(session, tenant, filter))).one()
    if session.get_bind().dialect.name == "postgresql":  # the caller's later queries plan
        for setting in _PG_COUNT_SETTINGS:  # as usual
            session.execute(text(f"RESET {setting}"))
    return AudienceCount(int(row.matched), {ch: int(row._mapping[ch]) for ch in CHANNELS})


def members(session: Session, tenant: str, audience_id: int | str) -> Iterator[int]:
    """Primary keys of the audience's customers in id order, read in chunks (one short
    query per chunk, so a long campaign run holds no transaction open); none for an unknown
    audience or one of another tenant. `audience_id`: the row id, or the public `aud_...`."""
    key = Audience.public_id if isinstance(audience_id, str) else Audience.id
    audience = session.scalar(select(Audience).where(key == audience_id,
                                                     Audience.tenant == tenant))
    if audience is None:
        return
    where = _where(session, tenant, parse_filter(audience.filter))
    after = 0
    while True:
        chunk = list(session.scalars(
            select(CUSTOMERS.c.id).select_from(_source(after))
            .where(where, CUSTOMERS.c.id > after)
            .order_by(CUSTOMERS.c.id).limit(MEMBER_CHUNK)))
        yield from chunk
        if len(chunk) < MEMBER_CHUNK:
            return
        after = chunk[-1]


# --- saved audiences ---------------------------------------------------------------------


def stored_filter(audience: AudienceFilter) -> dict[str, Any]:
    """The JSON a filter is stored as (read back by `parse_filter`)."""
    dumped: dict[str, Any] = audience.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def create(session: Session, tenant: str, producer: str, name: str, audience: AudienceFilter,
           purpose: str = "marketing") -> Audience:
    """Stores a new audience of the tenant."""
    row = Audience(public_id=f"aud_{secrets.token_urlsafe(12)}", tenant=tenant, name=name,
                   purpose=purpose, filter=stored_filter(audience), created_by=producer)
    session.add(row)
    session.flush()
    return row


def get(session: Session, tenant: str, public_id: str) -> Audience | None:
    """The tenant's audience with this public id (another tenant's is invisible)."""
    return session.scalar(select(Audience).where(Audience.public_id == public_id,
                                                 Audience.tenant == tenant))


def listing(session: Session, tenant: str, limit: int, after: int = 0) -> list[Audience]:
    """The tenant's audiences in creation order, a page after the row id `after`."""
    return list(session.scalars(select(Audience).where(Audience.tenant == tenant,
                                                       Audience.id > after)
                                .order_by(Audience.id).limit(limit)))
