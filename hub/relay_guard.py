"""What keeps template test-sends from being a relay: an allow-list of recipients,
suppressions and STOP honoured, a per-key rate limit, and a record of every attempt.

The record table is also the rate limit's store, so the limit holds across API processes
(the key's row is locked while counting, so concurrent requests of one key queue).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.customers import tombstone_key
from hub.db import utcnow
from hub.logs import get_logger, mask_text
from hub.models import ApiKey, TemplateTestSend
from hub.settings import Settings
from hub.suppressions import is_suppressed
from preferences import AddressError, normalize_phone

log = get_logger("test_send")
WINDOWS = (timedelta(minutes=1), timedelta(days=1))


class TestSendResult(enum.StrEnum):
    """The `result` of a recorded test-send."""

    __test__ = False  # not a pytest test class

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    NOT_ALLOWED = "not_allowed"
    SUPPRESSED = "suppressed"


def normalize_recipient(channel: str, raw: str) -> str:
    """The address in the form the allow-list and suppressions use (E.164 phone, normalized
    e-mail); ValueError when it is not an address of that channel."""
    if channel == "sms":
        try:
            return normalize_phone(raw.strip())
        except AddressError as exc:
            raise ValueError(str(exc)) from None
    if channel == "email":
        try:
            email = validate_email(raw.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(str(exc)) from None
        return str(email).lower()
    raise ValueError(f"test-send does not support the {channel} channel")


def allowed_recipients(settings: Settings, tenant: str) -> frozenset[str]:
    """The global allow-list plus the tenant's, normalized; unusable entries are skipped."""
    entries = [*settings.test_recipients, *settings.test_recipients_by_tenant.get(tenant, [])]
    allowed = set()
    for entry in entries:
        channel = "email" if "@" in entry else "sms"
        try:
            allowed.add(normalize_recipient(channel, entry))
        except ValueError:
            log.warning("test_recipient_ignored", channel=channel)
    return frozenset(allowed)


def recipient_hash(settings: Settings, address: str) -> str:
    """Keyed digest of a recipient: matches a known address without storing it."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"test-recipient:{address}".encode(), hashlib.sha256).hexdigest()


def retry_after(session: Session, settings: Settings, key_id: str, now: datetime
                ) -> int | None:
    """Seconds until the key may test-send again, None while it is under both limits.
    Locks the key's row first so concurrent requests of one key are counted in turn."""
    session.execute(select(ApiKey.id).where(ApiKey.key_id == key_id).with_for_update())
    limits = (settings.test_send_per_minute, settings.test_send_per_day)
    for window, limit in zip(WINDOWS, limits, strict=True):
        since = now - window
        stamps = select(TemplateTestSend.at).where(TemplateTestSend.key_id == key_id,
                                                   TemplateTestSend.at > since)
        count = session.scalar(select(func.count()).select_from(stamps.subquery())) or 0
        if count >= limit:
            oldest = session.scalar(stamps.order_by(TemplateTestSend.at)
                                    .offset(count - limit).limit(1))
            wait = (oldest + window - now).total_seconds() if oldest else window.total_seconds()
            return max(1, math.ceil(wait))
    return None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One test-send request as the guard sees it."""

    tenant: str
    key_id: str
    channel: str
    address: str  # normalized
    event_type: str
    locale: str


def admit(session: Session, settings: Settings, attempt: Attempt) -> TemplateTestSend:
    """Records the attempt with its verdict: `pending` (may send), `not_allowed` or
    `suppressed`. The caller checks the rate limit first (retry_after)."""
    if attempt.address not in allowed_recipients(settings, attempt.tenant):
        verdict = TestSendResult.NOT_ALLOWED
    elif is_suppressed(session, attempt.tenant, tombstone_key(settings), attempt.channel,
                       attempt.address):
        verdict = TestSendResult.SUPPRESSED  # STOP, hard bounce, invalid number
    else:
        verdict = TestSendResult.PENDING
    row = TemplateTestSend(
        tenant=attempt.tenant, key_id=attempt.key_id, recipient=mask_text(attempt.address),
        recipient_hash=recipient_hash(settings, attempt.address),
        event_type=attempt.event_type, channel=attempt.channel, locale=attempt.locale,
        result=str(verdict), at=utcnow())
    session.add(row)
    session.flush()
    log.info("test_send_admitted", key_id=attempt.key_id, channel=attempt.channel,
             result=str(verdict))
    return row


def finish(session: Session, row_id: int, ok: bool, provider_message_id: str | None) -> None:
    """Stores the provider's answer on the attempt's record."""
    row = session.get(TemplateTestSend, row_id)
    if row is not None:
        row.result = str(TestSendResult.SENT if ok else TestSendResult.FAILED)
        row.provider_message_id = provider_message_id


def recent(session: Session, tenant: str, limit: int) -> list[TemplateTestSend]:
    """The tenant's latest test-send records, newest first."""
    return list(session.scalars(
        select(TemplateTestSend).where(TemplateTestSend.tenant == tenant)
        .order_by(TemplateTestSend.id.desc()).limit(limit)))
