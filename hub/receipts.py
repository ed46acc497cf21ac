"""What provider receipts change: a notification's status history, dead addresses, and
consent keywords that recipients send back (SMS STOP/START).

The HTTP side (signature checks, parsing) lives in hub/api/channels.py; this module takes
plain values and a session, so it is the one place where a receipt takes effect.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.consents import stop_channel
from hub.customers import (
    deactivate_push_subscription,
    find_customers_by_phone,
    get_customer,
    tombstone_key,
)
from hub.db import utcnow
from hub.logs import get_logger
from hub.models import DEFAULT_TENANT, Customer, Event, InboundKeyword, Notification
from hub.settings import get_settings
from hub.suppressions import address_digest, lift, suppress
from hub.webhooks_out import record_receipt
from preferences import ConsentSource, preferences_from_json, preferences_to_json
from preferences.model import DEFAULT_CHANNELS

log = get_logger("receipts")

# A later receipt never moves the status back (a late "sent" after "delivered" is history
# only); failures rank with delivery because an e-mail can bounce after being delivered.
_RANK = {"sending": 0, "retry": 0, "unconfirmed": 1, "sent": 2, "delivered": 3, "failed": 3,
         "bounced": 3, "opened": 4, "clicked": 5, "complained": 6, "unsubscribed": 6}


class KeywordAction(enum.StrEnum):
    WITHDRAW = "withdraw"
    GRANT = "grant"
    HELP = "help"
    NONE = "none"


# Twilio's default opt-out / opt-in keywords, plus common Polish ones.
KEYWORDS = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                     "OPTOUT", "NIE", "STOPSMS"), KeywordAction.WITHDRAW),
    **dict.fromkeys(("START", "YES", "UNSTOP", "TAK"), KeywordAction.GRANT),
    **dict.fromkeys(("HELP", "INFO", "POMOC"), KeywordAction.HELP),
}


@dataclass(frozen=True, slots=True)
class ConsentSignal:
    """A recipient's channel-level consent change, as received from a provider."""

    channel: str
    address: str
    action: KeywordAction
    keyword: str
    source: str
    tenant: str = DEFAULT_TENANT


def notification_tenant(session: Session, row: Notification) -> str:
    """The tenant a send record belongs to (that of its event)."""
    return session.scalar(select(Event.tenant).where(Event.id == row.event_pk)) or DEFAULT_TENANT


def _address_tenant(session: Session, channel: str, address: str) -> str:
    """The tenant of the latest send to this address (callers that hold no send record)."""
    tenant = session.scalar(
        select(Event.tenant).join(Notification, Notification.event_pk == Event.id)
        .where(Notification.channel == channel, Notification.address == address)
        .order_by(Notification.id.desc()).limit(1))
    return tenant or DEFAULT_TENANT


def _key(key: str | None) -> str:
    return key if key is not None else tombstone_key(get_settings())


def find_notification(session: Session, key: str | None, provider_message_id: str | None,
                      ) -> Notification | None:
    """The send record a receipt is about: by our idempotency key, else the provider's id."""
    if key:
        row = session.scalar(select(Notification).where(Notification.idempotency_key == key))
        if row is not None:
            return row
    if provider_message_id:
        return session.scalar(
            select(Notification).where(Notification.provider_message_id == provider_message_id))
    return None


def apply_status(row: Notification, status: str, *, provider_message_id: str | None = None,
                 detail: str | None = None, receipt_id: str | None = None,
                 source: str = "") -> bool:
    """Appends a receipt to the history; moves `status` forward only. False if a duplicate."""
    history = list(row.history or [])
    if receipt_id and any(h.get("receipt_id") == receipt_id for h in history):
        return False
    entry: dict[str, Any] = {"status": status, "at": utcnow().isoformat(), "source": source}
    if detail:
        entry["detail"] = detail
    if receipt_id:
        entry["receipt_id"] = receipt_id
    row.history = [*history, entry]
    if status == "opened" and row.opened_at is None:  # counted per message (campaign reports)
        row.opened_at = utcnow()
    if provider_message_id and not row.provider_message_id:
        row.provider_message_id = provider_message_id  # a send settled after a crash
    if _RANK.get(status, 0) >= _RANK.get(row.status, 0):
        row.status = status
        if status in ("failed", "bounced"):
            row.error = detail
        record_receipt(row, status)  # outgoing webhooks (same transaction as the receipt)
    return True


def deactivate_address(session: Session, channel: str, address: str, reason: str,
                       source: str, opted_out: bool = False, *, tenant: str | None = None,
                       key: str | None = None) -> None:
    """Stops using a dead address: a push subscription is deactivated, others suppressed
    for the tenant (default: the tenant of the latest send to the address).

    `opted_out` (the provider says the recipient unsubscribed) is a consent withdrawal.
    """
    tenant = tenant or _address_tenant(session, channel, address)
    if opted_out:
        consent_change(session, ConsentSignal(channel, address, KeywordAction.WITHDRAW,
                                              "provider_opt_out", source, tenant), key)
        return
    if channel == "push":
        try:
            endpoint = str(json.loads(address)["endpoint"])
        except (ValueError, KeyError, TypeError):
            endpoint = address
        deactivate_push_subscription(session, endpoint, reason)
        return
    suppress(session, tenant, _key(key), channel, address, "dead_address", source, reason)


def keyword_action(text: str) -> tuple[str, KeywordAction]:
    """The keyword an inbound message is (first word, case-insensitive), and its action."""
    word = (text or "").strip().split(maxsplit=1)[0].upper().strip(".!") if text.strip() else ""
    return word, KEYWORDS.get(word, KeywordAction.NONE)


def apply_inbound_keyword(session: Session, channel: str, address: str, text: str,
                          provider: str, provider_message_id: str | None, *,
                          tenant: str = DEFAULT_TENANT, key: str | None = None
                          ) -> KeywordAction:
    """Records an inbound consent keyword for the tenant the message was sent to
    (independent of any notification) and applies it.

    Idempotent per provider message id: a redelivered webhook changes nothing twice.
    """
    keyword, action = keyword_action(text)
    if action in (KeywordAction.NONE, KeywordAction.HELP):
        return action
    if provider_message_id and session.scalar(
            select(InboundKeyword.id).where(
                InboundKeyword.provider_message_id == provider_message_id)) is not None:
        return action
    session.add(InboundKeyword(tenant=tenant, channel=channel, address=address,
                               address_digest=address_digest(_key(key), channel, address),
                               keyword=keyword, action=str(action), provider=provider,
                               provider_message_id=provider_message_id))
    consent_change(session, ConsentSignal(channel, address, action, keyword, provider, tenant),
                   key)
    return action


def consent_change(session: Session, signal: ConsentSignal, key: str | None = None) -> None:
    """The single place where a channel-level consent signal takes effect.

    A withdrawal suppresses the address on that channel and, for every customer holding
    the address, writes the consent ledger's channel stop (marketing and loyalty consents
    withdrawn, transactional notices opted out). A grant (START) lifts the suppression and
    opts transactional notices back in; it does not re-grant marketing or loyalty consent,
    which needs the customer's informed opt-in (preference center).
    """
    tenant = signal.tenant
    customers = _customers_at(session, tenant, signal.channel, signal.address)
    if signal.action is KeywordAction.WITHDRAW:
        suppress(session, tenant, _key(key), signal.channel, signal.address,
                 "recipient_opt_out", signal.source, f"keyword {signal.keyword}")
        for customer_id in customers:
            stop_channel(session, customer_id, signal.channel, source=_ledger_source(signal),
                         tenant=tenant)
    elif signal.action is KeywordAction.GRANT:
        lift(session, tenant, _key(key), signal.channel, signal.address)
        for customer_id in customers:
            _restore_transactional(session, tenant, customer_id, signal.channel)
    log.info("consent_signal", channel=signal.channel, action=str(signal.action),
             source=signal.source, customers=len(customers))


def _restore_transactional(session: Session, tenant: str, customer_id: str, channel: str
                           ) -> None:
    """Opts the channel back in for transactional notices, at its default rank (a STOP then
    START should not silently demote SMS behind e-mail)."""
    customer = get_customer(session, tenant, customer_id)
    if customer is None:
        return
    prefs = preferences_to_json(preferences_from_json(customer.preferences))
    order = [c for c in prefs["channels"]["transactional"] if c != channel]
    default = list(DEFAULT_CHANNELS["transactional"])
    rank = default.index(channel) if channel in default else len(order)
    before = [c for c in order if c in default and default.index(c) < rank]
    position = max((order.index(c) + 1 for c in before), default=0)
    prefs["channels"]["transactional"] = [*order[:position], channel, *order[position:]]
    customer.preferences = {**(customer.preferences or {}), **prefs}


def _customers_at(session: Session, tenant: str, channel: str, address: str) -> list[str]:
    if channel == "sms":
        return find_customers_by_phone(session, tenant, address)
    if channel == "email":
        return list(session.scalars(select(Customer.external_id).where(
            Customer.tenant == tenant, Customer.email == address)))
    return []


def _ledger_source(signal: ConsentSignal) -> str:
    if signal.channel == "sms":
        return str(ConsentSource.SMS_STOP)
    return f"{signal.source}_{signal.keyword}"[:32]
