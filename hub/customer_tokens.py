"""Customer session tokens: short-lived, signed credentials the carrier's backend issues for
its app (`POST /v1/customers/{id}/session-token`), so a phone never holds an API key.

A token binds one tenant's customer (external id and row id), an expiry and what it may
reach (`inbox`, `preferences`). It starts with `hubct1.` (the format version), so it can
never be mistaken for an API key (`hub_<id>_<secret>`). Nothing is stored: it is valid while
the signature checks, it has not expired and the customer row it names still exists (an
erasure deletes the row, and a tombstone stops the id from coming back)."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeSerializer

from hub.settings import Settings

PREFIX = "hubct1."
_SALT = "hub.customer-session.v1"
MAX_TTL_SECONDS = 86_400
DEFAULT_TTL_SECONDS = 3_600


class CustomerScope(enum.StrEnum):
    INBOX = "inbox"
    PREFERENCES = "preferences"


@dataclass(frozen=True, slots=True)
class CustomerSession:
    """A verified token: whose it is, until when, and what it reaches."""

    tenant: str
    customer_id: str
    customer_pk: int
    expires_at: int  # unix seconds
    scopes: frozenset[str]

    def allows(self, scope: CustomerScope) -> bool:
        """True when the token was issued for `scope`."""
        return scope in self.scopes


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key.get_secret_value(), salt=_SALT)


def is_customer_token(token: str) -> bool:
    """True for anything shaped like a customer token (signature not checked)."""
    return token.startswith(PREFIX)


def issue_token(settings: Settings, tenant: str, customer_id: str, customer_pk: int,
                ttl_seconds: int = DEFAULT_TTL_SECONDS) -> tuple[str, int]:
    """A token for the customer valid `ttl_seconds` (at most a day), and its expiry."""
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be 1..{MAX_TTL_SECONDS} seconds")
    expires_at = int(time.time()) + ttl_seconds
    scopes = sorted(str(s) for s in CustomerScope)
    payload = [tenant, customer_id, customer_pk, expires_at, scopes]
    return PREFIX + _serializer(settings).dumps(payload), expires_at


def read_token(settings: Settings, token: str, now: float | None = None
               ) -> CustomerSession | None:
    """The session of a well-signed, unexpired token; None otherwise. Whether its customer
    still exists is the caller's check (it needs the store)."""
    if not is_customer_token(token) or len(token) > 2048:
        return None
    try:
        value = _serializer(settings).loads(token[len(PREFIX):])
    except BadData:
        return None
    if not (isinstance(value, list) and len(value) == 5):
        return None
    tenant, customer_id, customer_pk, expires_at, scopes = value
    if not (isinstance(tenant, str) and isinstance(customer_id, str)
            and isinstance(customer_pk, int) and isinstance(expires_at, int)
            and isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        return None
    if expires_at <= (time.time() if now is None else now):
        return None
    return CustomerSession(tenant, customer_id, customer_pk, expires_at, frozenset(scopes))
