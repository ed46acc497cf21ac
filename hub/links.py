"""Signed customer links: the preference center (`/p/<token>`), one-click unsubscribe
(`/u/<token>`, RFC 8058), its short-lived undo token and the List-Unsubscribe headers the
e-mail adapter adds."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from hub.feedback import rating_links
from hub.models import DEFAULT_TENANT
from hub.settings import Settings

_PREFERENCE_SALT = "hub.preference-center.v1"
_UNSUBSCRIBE_SALT = "hub.unsubscribe.v1"
_UNDO_SALT = "hub.unsubscribe-undo.v1"
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class UnsubscribeScope:
    """What an unsubscribe link stops: one category on one channel for one customer."""

    customer_id: str
    category: str
    channel: str
    tenant: str = DEFAULT_TENANT


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=salt)


def _base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


@dataclass(frozen=True, slots=True)
class PreferenceScope:
    """Whose preference center a link opens: one customer of one tenant."""

    customer_id: str
    tenant: str = DEFAULT_TENANT


def preference_token(settings: Settings, customer_id: str, tenant: str = DEFAULT_TENANT
                     ) -> str:
    """A signed token scoped to one customer of one tenant (expiry checked when read); the
    default tenant's keeps the shorter single-tenant form (links go into SMS)."""
    value: str | list[str] = customer_id if tenant == DEFAULT_TENANT else [tenant, customer_id]
    return _serializer(settings, _PREFERENCE_SALT).dumps(value)


def preference_link(settings: Settings, customer_id: str, tenant: str = DEFAULT_TENANT) -> str:
    """The absolute preference-center URL for a customer, to put into messages."""
    return f"{_base(settings)}/p/{preference_token(settings, customer_id, tenant)}"


def read_preference_token(settings: Settings, token: str) -> PreferenceScope | None:
    """Whose center a valid, unexpired token opens; None when tampered with or expired.
    Tokens signed before tenants existed (a bare id) belong to the default tenant."""
    value = _loads(settings, _PREFERENCE_SALT, token, settings.preference_link_days)
    if isinstance(value, str):
        return PreferenceScope(value)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return PreferenceScope(value[1], value[0])
    return None


def unsubscribe_token(settings: Settings, customer_id: str, category: str, channel: str,
                      tenant: str = DEFAULT_TENANT) -> str:
    """A signed token that withdraws `category` on `channel` for the tenant's customer."""
    value = [customer_id, category, channel]
    return _serializer(settings, _UNSUBSCRIBE_SALT).dumps(
        value if tenant == DEFAULT_TENANT else [*value, tenant])


def unsubscribe_link(settings: Settings, customer_id: str, category: str, channel: str,
                     tenant: str = DEFAULT_TENANT) -> str:
    """The absolute one-click unsubscribe URL."""
    token = unsubscribe_token(settings, customer_id, category, channel, tenant)
    return f"{_base(settings)}/u/{token}"


def read_unsubscribe_token(settings: Settings, token: str) -> UnsubscribeScope | None:
    """What a valid, unexpired unsubscribe token stops; None when tampered with or expired.
    Tokens signed before tenants existed (three items) belong to the default tenant."""
    value = _loads(settings, _UNSUBSCRIBE_SALT, token, settings.unsubscribe_link_days)
    if isinstance(value, list) and len(value) in (3, 4) and all(
            isinstance(v, str) for v in value):
        return UnsubscribeScope(*value)
    return None


@dataclass(frozen=True, slots=True)
class UndoGrant:
    """A valid undo token: its single-use id and what the unsubscribe changed."""

    token_id: str
    kind: str
    ref: int


def _binding(unsubscribe: str) -> str:
    return hashlib.sha256(unsubscribe.encode()).hexdigest()[:32]


def undo_token(settings: Settings, unsubscribe: str, kind: str, ref: int) -> str:
    """A signed, single-use token (issued by one unsubscribe, valid
    `unsubscribe_undo_minutes`) that reverts the change (`kind`, `ref`) that unsubscribe
    made. It is bound to the unsubscribe token, so it works only on that link's page."""
    payload = [_binding(unsubscribe), kind, ref, secrets.token_hex(16)]
    return _serializer(settings, _UNDO_SALT).dumps(payload)


def read_undo_token(settings: Settings, token: str, unsubscribe: str) -> UndoGrant | None:
    """The grant of a valid, unexpired undo token issued for `unsubscribe`; None otherwise.
    (Whether it was already spent is the store's business: hub.consents.spend_undo_token.)"""
    try:
        value = _serializer(settings, _UNDO_SALT).loads(
            token, max_age=settings.unsubscribe_undo_minutes * 60)
    except BadData:
        return None
    if not (isinstance(value, list) and len(value) == 4):
        return None
    binding, kind, ref, token_id = value
    if binding != _binding(unsubscribe) or kind not in ("consent", "channel"):
        return None
    if not isinstance(ref, int) or not isinstance(token_id, str):
        return None
    return UndoGrant(token_id, kind, ref)


def unsubscribe_headers(
    settings: Settings, customer_id: str, category: str, channel: str = "email",
    tenant: str = DEFAULT_TENANT,
) -> dict[str, str]:
    """`List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 2369 + RFC 8058 one-click)."""
    link = unsubscribe_link(settings, customer_id, category, channel, tenant)
    return {"List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def message_links(settings: Settings, customer_id: str, category: str, channel: str,
                  tenant: str = DEFAULT_TENANT, event_ref: str | None = None
                  ) -> dict[str, str]:
    """Links a template may show: `preferences` (the center) and `unsubscribe` (this
    category on this channel), both for the tenant's customer; for a feedback request
    (`event_ref`: the request event's id) also its signed rating links."""
    links = {"preferences": preference_link(settings, customer_id, tenant),
             "unsubscribe": unsubscribe_link(settings, customer_id, category, channel, tenant)}
    if category == "feedback" and event_ref is not None and event_ref.isdigit():
        links |= rating_links(settings, tenant, customer_id, int(event_ref), channel)
    return links


def _loads(settings: Settings, salt: str, token: str, days: int) -> Any:
    try:
        return _serializer(settings, salt).loads(token, max_age=days * _DAY)
    except BadData:
        return None
