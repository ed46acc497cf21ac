"""The consent ledger in the store: append a grant or withdrawal, and the shared withdrawal
paths (preference center, one-click unsubscribe, inbound SMS STOP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import activity
from hub.customers import consent_entries, get_customer
from hub.db import utcnow
from hub.models import DEFAULT_TENANT, ConsentRecord, UsedUndoToken
from preferences import (
    CHANNELS,
    ConsentAction,
    ConsentSource,
    LegalBasis,
    Purpose,
    check_claimed_at,
    derive_state,
    preferences_from_json,
    preferences_to_json,
)
from preferences.model import CONSENT_CATEGORIES

UNDO_TEXT_VERSION = "unsubscribe-undo"

# A client-supplied consent time for API models: aware, not in the future (5 min skew),
# representable in UTC; anything else is a 422 naming the field.
ClaimedTime = Annotated[AwareDatetime, AfterValidator(lambda at: check_claimed_at(at, utcnow()))]


@dataclass(frozen=True, slots=True)
class Revert:
    """What one unsubscribe changed, so that its undo restores exactly that: the withdrawal
    row written (`kind` "consent", `ref` its id) or a channel opt-out (`kind` "channel")."""

    kind: str
    ref: int


def record_consent(
    session: Session, customer_id: str, purpose: str, channel: str, action: ConsentAction,
    source: str, *, legal_basis: str = LegalBasis.CONSENT, text_version: str | None = None,
    at: datetime | None = None, tenant: str = DEFAULT_TENANT,
) -> ConsentRecord:
    """Appends one ledger row (rows are never updated). `at` is the client's claimed time,
    kept as evidence; the row's place in the ledger is the order in which it is written."""
    row = ConsentRecord(tenant=tenant, customer_id=customer_id, purpose=str(purpose),
                        channel=channel,
                        action=str(action), legal_basis=str(legal_basis), source=str(source),
                        text_version=text_version, recorded_at=utcnow(), claimed_at=at)
    session.add(row)
    session.flush()
    activity.sync_consents(session, tenant, customer_id)  # the bits audiences filter on
    return row


def current_action(session: Session, customer_id: str, purpose: str, channel: str, *,
                   tenant: str = DEFAULT_TENANT) -> ConsentAction | None:
    """The derived state of one (purpose, channel): granted, withdrawn or None."""
    return derive_state(consent_entries(session, tenant, customer_id)).status(purpose, channel)


def set_consent(
    session: Session, customer_id: str, purpose: str, channel: str, granted: bool,
    source: str, text_version: str | None = None, *, tenant: str = DEFAULT_TENANT,
) -> bool:
    """Grants or withdraws unless that is already the current state; True if a row was written.

    A withdrawal is written even when nothing was granted: it records an explicit objection.
    """
    wanted = ConsentAction.GRANTED if granted else ConsentAction.WITHDRAWN
    if current_action(session, customer_id, purpose, channel, tenant=tenant) is wanted:
        return False
    record_consent(session, customer_id, purpose, channel, wanted, source,
                   text_version=text_version, tenant=tenant)
    return True


def withdraw_consent(
    session: Session, customer_id: str, purpose: str, channel: str, source: str,
    text_version: str | None = None, *, tenant: str = DEFAULT_TENANT,
) -> bool:
    """Withdraws consent for `purpose` on `channel` (e.g. source `sms_stop`); True if written."""
    return set_consent(session, customer_id, purpose, channel, False, source, text_version,
                       tenant=tenant)


def set_channel_opt_in(session: Session, customer_id: str, category: str, channel: str,
                       wanted: bool, *, tenant: str = DEFAULT_TENANT) -> bool:
    """Adds or removes a channel from the customer's list for a category; True if changed."""
    customer = get_customer(session, tenant, customer_id)
    if customer is None:
        return False
    prefs = preferences_to_json(preferences_from_json(customer.preferences))
    order: list[str] = prefs["channels"][category]
    if (channel in order) == wanted:
        return False
    prefs["channels"][category] = [*order, channel] if wanted else [
        c for c in order if c != channel]
    customer.preferences = {**(customer.preferences or {}), **prefs}  # keeps `throttling`
    return True


def unsubscribe(session: Session, customer_id: str, category: str, channel: str,
                source: str = ConsentSource.UNSUBSCRIBE_LINK, *,
                tenant: str = DEFAULT_TENANT) -> Revert | None:
    """Stops `category` on `channel`: a consent withdrawal for loyalty/marketing, a channel
    opt-out for transactional notices (they need no consent). Returns what changed (for a
    one-time undo), None when it was already stopped."""
    if category in CONSENT_CATEGORIES:
        if current_action(session, customer_id, category, channel,
                          tenant=tenant) is ConsentAction.WITHDRAWN:
            return None
        row = record_consent(session, customer_id, category, channel,
                             ConsentAction.WITHDRAWN, source, tenant=tenant)
        return Revert("consent", row.id)
    if set_channel_opt_in(session, customer_id, category, channel, wanted=False, tenant=tenant):
        return Revert("channel", 0)
    return None


def spend_undo_token(session: Session, token_id: str, lifetime: timedelta) -> bool:
    """Marks an undo token used; False if it was used before (in any process: the primary
    key decides). Also forgets spent tokens that have expired anyway."""
    session.execute(delete(UsedUndoToken).where(UsedUndoToken.used_at < utcnow() - lifetime))
    try:
        with session.begin_nested():
            session.add(UsedUndoToken(token_id=token_id))
    except IntegrityError:
        return False
    return True


def undo_unsubscribe(session: Session, customer_id: str, category: str, channel: str,
                     revert: Revert, *, tenant: str = DEFAULT_TENANT) -> bool:
    """Reverts exactly the change `revert` names; nothing when a later entry changed that
    (purpose, channel) since (e.g. a support withdrawal, or the undo was already applied).
    True if consent or the channel was restored."""
    if revert.kind == "channel":
        return set_channel_opt_in(session, customer_id, category, channel, wanted=True,
                                  tenant=tenant)
    if revert.kind != "consent" or category not in CONSENT_CATEGORIES:
        return False
    mine = [e for e in consent_entries(session, tenant, customer_id)
            if (e.purpose, e.channel) == (category, channel)]
    if not mine or mine[-1].sequence != revert.ref:
        return False  # the withdrawal is gone (erasure) or no longer the latest entry
    record_consent(session, customer_id, category, channel, ConsentAction.GRANTED,
                   ConsentSource.UNSUBSCRIBE_LINK, text_version=UNDO_TEXT_VERSION,
                   tenant=tenant)
    return True


def stop_channel(session: Session, customer_id: str, channel: str,
                 source: str = ConsentSource.SMS_STOP, *, tenant: str = DEFAULT_TENANT
                 ) -> list[str]:
    """Everything stops on `channel` (inbound SMS STOP): marketing and loyalty consents are
    withdrawn and transactional notices opted out. Returns the categories changed."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    changed = [p for p in (Purpose.MARKETING, Purpose.LOYALTY)
               if withdraw_consent(session, customer_id, p, channel, source, tenant=tenant)]
    if set_channel_opt_in(session, customer_id, "transactional", channel, wanted=False,
                          tenant=tenant):
        changed.append("transactional")
    return [str(c) for c in changed]
