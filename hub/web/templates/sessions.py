"""Server-side sessions of the marketer pages (`/ui`).

The cookie holds a random session token; the store keeps only its SHA-256 with the key id,
expiry and revocation time. Every request joins the session to its API key, so logging out
or revoking the key ends the session at once, in every process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from hub.db import Database, utcnow
from hub.keys import Scope
from hub.models import ApiKey, UiSession
from hub.settings import Settings

COOKIE = "hub_ui_session"
LEGACY_COOKIE = "hub_ui_templates"  # held the signed API key itself; cleared on sight


@dataclass(frozen=True, slots=True)
class PageUser:
    """Who is logged in to the pages: the key's id, producer, tenant and scopes (what
    the pages let them do follows the scopes)."""

    key_id: str
    producer: str
    tenant: str = "default"
    scopes: frozenset[str] = frozenset()

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def page_scopes_ok(scopes: frozenset[str] | list[str]) -> bool:
    """Pages need templates:read and refuse admin keys (an admin key stays in automation)."""
    return Scope.TEMPLATES_READ in scopes and Scope.ADMIN not in scopes


def start(db: Database, settings: Settings, key_id: str) -> str:
    """Stores a new session for the key; returns the cookie value (never stored in clear)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.transaction() as session:
        # expired sessions are of no use; forget them while we are here
        session.execute(delete(UiSession).where(UiSession.expires_at < now - timedelta(days=1)))
        session.add(UiSession(token_hash=_digest(token), key_id=key_id, created_at=now,
                              expires_at=now + timedelta(hours=settings.ui_session_hours)))
    return token


def resolve(db: Database, token: str | None) -> PageUser | None:
    """The user of a live session: unexpired, not logged out, its key unrevoked and still
    allowed on the pages; None otherwise."""
    if not token or len(token) > 200:
        return None
    with db.sessions() as session:
        row = session.execute(
            select(ApiKey.key_id, ApiKey.producer, ApiKey.scopes, ApiKey.tenant)
            .join(UiSession, UiSession.key_id == ApiKey.key_id)
            .where(UiSession.token_hash == _digest(token), UiSession.revoked_at.is_(None),
                   UiSession.expires_at > utcnow(), ApiKey.revoked_at.is_(None))
        ).first()
    if row is None or not page_scopes_ok(frozenset(row.scopes)):
        return None
    return PageUser(row.key_id, row.producer, row.tenant, frozenset(row.scopes))


def end(db: Database, token: str | None) -> None:
    """Logs the session out server-side (a replayed cookie no longer works)."""
    if not token:
        return
    with db.transaction() as session:
        session.execute(update(UiSession).where(UiSession.token_hash == _digest(token),
                                                UiSession.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))


def csrf_token(settings: Settings, token: str) -> str:
    """The anti-CSRF value of a session's forms: an HMAC of the session, so it cannot be
    guessed by another site and needs no storage."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"ui-csrf:{_digest(token)}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, token: str | None, presented: str) -> bool:
    """True when the form carries the session's anti-CSRF value."""
    return bool(token) and hmac.compare_digest(csrf_token(settings, str(token)), presented)
