"""The carrier's app installations (FCM / APNs tokens) in the store: registration, listing,
removal, and deactivation when a provider calls a token dead."""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.models import Customer, Device
from preferences import AppDevice

MAX_TOKEN_LENGTH = 512  # FCM allows up to 4096; real tokens are ~160, the column holds 512
_APNS_TOKEN = re.compile(r"^[0-9a-fA-F]{64}$")  # 32 bytes, hex
_FCM_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


class Platform(enum.StrEnum):
    ANDROID = "android"  # Firebase Cloud Messaging
    IOS = "ios"  # Apple Push Notification service


class TokenError(ValueError):
    """A push token that cannot belong to the platform; the message names the rule."""


def is_apns_token(token: str) -> bool:
    """An APNs device token; an iOS device with any other token is reached through FCM."""
    return _APNS_TOKEN.match(token) is not None


def check_token(platform: Platform, token: str) -> str:
    """The token as stored (APNs lower-cased), else TokenError."""
    if platform is Platform.IOS:
        if is_apns_token(token):
            return token.lower()
        if ":" not in token or not _FCM_TOKEN.match(token):  # an app on Firebase: FCM's token
            raise TokenError("an iOS token is an APNs device token (64 hexadecimal "
                             "characters) or, for an app using Firebase, an FCM registration "
                             "token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError(f"an FCM registration token longer than {MAX_TOKEN_LENGTH} "
                         "characters is not accepted")
    if not _FCM_TOKEN.match(token):
        raise TokenError("an FCM registration token has printable ASCII characters only, "
                         "without spaces")
    return token


@dataclass(frozen=True, slots=True)
class Registration:
    platform: Platform
    token: str
    app_id: str
    app_version: str | None
    locale: str | None


def register(session: Session, customer: Customer, reg: Registration) -> tuple[Device, bool]:
    """Stores the installation; a token already known in the tenant moves to this customer
    (one token is one install: a re-login on the phone) and is live again. True if new."""
    token = check_token(reg.platform, reg.token)
    row = session.scalar(select(Device).where(Device.tenant == customer.tenant,
                                              Device.token == token))
    created = row is None
    if row is None:
        row = Device(tenant=customer.tenant, token=token)
        session.add(row)
    row.customer_pk, row.platform, row.app_id = customer.id, str(reg.platform), reg.app_id
    row.app_version, row.locale = reg.app_version, reg.locale
    row.active, row.deactivated_reason, row.updated_at = True, None, utcnow()
    session.flush()
    return row, created


def devices_of(session: Session, customer: Customer) -> list[Device]:
    """Every installation of the customer (live and deactivated), newest first."""
    return list(session.scalars(select(Device).where(Device.customer_pk == customer.id)
                                .order_by(Device.created_at.desc(), Device.id.desc())))


def remove(session: Session, customer: Customer, device_id: int) -> bool:
    """Deletes one installation of the customer (the app logged out); False if none."""
    row = session.scalar(select(Device).where(Device.id == device_id,
                                              Device.customer_pk == customer.id))
    if row is None:
        return False
    session.delete(row)
    return True


def deactivate_device(session: Session, tenant: str, token: str, reason: str) -> bool:
    """Stops using a token the provider called dead (FCM UNREGISTERED, APNs 410 /
    BadDeviceToken); the row stays so the inbox remains reachable. True if it was live."""
    result = session.execute(
        update(Device).where(Device.tenant == tenant, Device.token == token, Device.active)
        .values(active=False, deactivated_reason=reason[:200], updated_at=utcnow()))
    return bool(getattr(result, "rowcount", 0))


def app_devices(session: Session, customer_pks: list[int]
                ) -> tuple[dict[int, tuple[AppDevice, ...]], set[int]]:
    """For a batch of customers: their active installations (newest first), and which of
    them ever registered the app (the inbox is readable even when every token is dead)."""
    active: dict[int, list[AppDevice]] = defaultdict(list)
    has_app: set[int] = set()
    if not customer_pks:
        return {}, has_app
    for row in session.connection().execute(_DEVICES_OF, {"b_pks": customer_pks}):
        has_app.add(row.customer_pk)
        if row.active:
            active[row.customer_pk].append(
                AppDevice(row.id, row.platform, row.token, row.app_id))
    return {pk: tuple(devices) for pk, devices in active.items()}, has_app


_DEVICES_OF = (  # built once: the engine loads a batch's devices many times a second
    select(Device.customer_pk, Device.id, Device.platform, Device.token, Device.app_id,
           Device.active)
    .where(Device.customer_pk.in_(bindparam("b_pks", expanding=True)))
    .order_by(Device.created_at.desc(), Device.id.desc()))


def masked(token: str) -> str:
    """Enough of a token to tell installations apart, never enough to send to it."""
    return f"{token[:6]}…{token[-4:]}" if len(token) > 12 else "…"


def device_json(row: Device, *, full_token: bool = False) -> dict[str, Any]:
    """An installation as the API (masked token) and the GDPR export (full token) show it."""
    return {"id": row.id, "platform": row.platform,
            "token": row.token if full_token else masked(row.token),
            "app_id": row.app_id, "app_version": row.app_version, "locale": row.locale,
            "active": row.active, "deactivated_reason": row.deactivated_reason,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}
