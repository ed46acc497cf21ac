"""API keys with scopes: `hub_<key id>_<secret>`; only the secret's SHA-256 is stored.

A key belongs to a (tenant, producer) pair. Every request reads the key's row (one indexed
lookup), so a revoked key fails on the next request in every process: there is no cache of
verified tokens that could outlive a revocation."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update

from hub.customer_tokens import CustomerSession
from hub.db import Database, utcnow
from hub.models import DEFAULT_TENANT, ApiKey


class Scope(enum.StrEnum):
    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    CUSTOMERS_WRITE = "customers:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_SEND = "templates:send"  # test-send to allow-listed recipients
    TEMPLATES_WRITE = "templates:write"  # save template drafts (issue 13)
    TEMPLATES_PUBLISH = "templates:publish"  # publish, roll back, return to the catalog
    FEEDBACK_READ = "feedback:read"  # delivery feedback statistics (issue 15)
    WEBHOOKS_WRITE = "webhooks:write"  # outgoing webhook endpoints and their logs (issue 15)
    CAMPAIGNS_READ = "campaigns:read"  # campaigns, their progress and reports (issue 13)
    CAMPAIGNS_WRITE = "campaigns:write"  # create, start, pause, resume, cancel (issue 13)
    AUDIENCES_READ = "audiences:read"  # audiences and their counts (issue 13)
    AUDIENCES_WRITE = "audiences:write"  # create, change, delete audiences (issue 13)
    CONVERSIONS_WRITE = "conversions:write"  # report conversions (issue 13)
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's tenant and producer and what it may do (`admin` implies
    every scope). Handlers take the tenant from here, never from a request body.

    A customer's own app calling with a session token is a principal without a key or
    scopes (`allows` is always False) that carries the verified `customer` session."""

    key_id: str
    producer: str
    scopes: frozenset[str]
    tenant: str = DEFAULT_TENANT
    customer: CustomerSession | None = None

    def allows(self, scope: Scope) -> bool:
        """True when the key holds `scope` (or `admin`)."""
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# The producers of the hub's own events (follow-up timers: hub.followups.firing.PRODUCER;
# campaigns: hub.campaigns.copy.PRODUCER): no key may post as them, so nobody can take the
# deterministic ids of timers not yet fired or of campaign messages not yet queued.
RESERVED_PRODUCER = "hub-rules"
RESERVED_PRODUCERS = frozenset({RESERVED_PRODUCER, "hub-campaigns"})


def create_key(db: Database, producer: str, scopes: list[Scope], name: str | None = None,
               tenant: str = DEFAULT_TENANT) -> str:
    """Stores a new key of (tenant, producer) and returns its full token (shown once).

    A producer name belongs to one tenant (event ids are unique per producer), so a name
    already used by another tenant raises ValueError."""
    if producer in RESERVED_PRODUCERS:
        raise ValueError(f"producer {producer!r} is the hub's own (follow-up timers, "
                         "campaigns)")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with db.transaction() as session:
        owner = session.scalar(select(ApiKey.tenant).where(ApiKey.producer == producer,
                                                           ApiKey.tenant != tenant).limit(1))
        if owner is not None:
            raise ValueError(f"producer {producer!r} belongs to another tenant")
        session.add(
            ApiKey(
                key_id=key_id,
                tenant=tenant,
                secret_hash=_hash(secret),
                producer=producer,
                scopes=sorted(str(s) for s in scopes),
                name=name,
            )
        )
    return f"hub_{key_id}_{secret}"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as operators see it (never the secret)."""

    key_id: str
    tenant: str
    producer: str
    scopes: list[str]
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


def list_keys(db: Database) -> list[KeyInfo]:
    """Every key, oldest first, revoked ones included."""
    with db.sessions() as session:
        rows = session.scalars(select(ApiKey).order_by(ApiKey.id))
        return [KeyInfo(r.key_id, r.tenant, r.producer, list(r.scopes), r.name, r.created_at,
                        r.revoked_at) for r in rows]


def revoke_key(db: Database, key_id: str) -> bool:
    """Revokes a key (effective on the next request everywhere); False if unknown or
    already revoked."""
    with db.transaction() as session:
        result = session.execute(update(ApiKey).where(ApiKey.key_id == key_id,
                                                      ApiKey.revoked_at.is_(None))
                                 .values(revoked_at=utcnow()))
        return bool(getattr(result, "rowcount", 0))


_KEYS = ApiKey.__table__.c
_KEY_LOOKUP = select(_KEYS.key_id, _KEYS.producer, _KEYS.scopes, _KEYS.tenant, _KEYS.revoked_at,
                     _KEYS.secret_hash).where(_KEYS.key_id == bindparam("key_id"))


class KeyVerifier:
    """Checks presented tokens against the store on every call (no cache: a revocation
    must take effect at once in every process; the lookup is one primary-key-like read)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def verify(self, token: str) -> Principal | None:
        """The principal for a valid, unrevoked token, else None (reads the store)."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != "hub" or not key_id or not secret or len(key_id) > 32:
            return None
        with self.db.read_connection() as conn:  # a plain row: no ORM object per request
            row = conn.execute(_KEY_LOOKUP, {"key_id": key_id}).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        return Principal(row.key_id, row.producer, frozenset(row.scopes), row.tenant)
