"""API keys with scopes: `hub_<key id>_<secret>`; only the secret's SHA-256 is stored."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from hub.db import Database
from hub.models import ApiKey


class Scope(enum.StrEnum):
    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    CUSTOMERS_WRITE = "customers:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_SEND = "templates:send"  # test-send to allow-listed recipients
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's producer and what it may do (`admin` implies every scope)."""

    key_id: str
    producer: str
    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(db: Database, producer: str, scopes: list[Scope], name: str | None = None) -> str:
    """Stores a new key and returns its full token (shown once, never stored)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with db.transaction() as session:
        session.add(
            ApiKey(
                key_id=key_id,
                secret_hash=_hash(secret),
                producer=producer,
                scopes=sorted(str(s) for s in scopes),
                name=name,
            )
        )
    return f"hub_{key_id}_{secret}"


class KeyVerifier:
    """Checks presented tokens; remembers verified ones briefly to keep the hot path cheap."""

    def __init__(self, db: Database, cache_seconds: float = 30.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal if this token was verified within the last `cache_seconds`."""
        with self._lock:
            hit = self._cache.get(_hash(token))
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def verify(self, token: str) -> Principal | None:
        """The principal for a valid, unrevoked token, else None (may read the store)."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        now = time.monotonic()
        digest = _hash(token)
        principal = self._lookup(token)
        if principal is not None:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now + self.cache_seconds, principal)
        return principal

    def _lookup(self, token: str) -> Principal | None:
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != "hub" or not key_id or not secret:
            return None
        with self.db.sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        return Principal(row.key_id, row.producer, frozenset(row.scopes))
