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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.db import utcnow
from hub.logs import get_logger
from hub.models import ChannelSuppression, InboundKeyword, Notification, WebPushSubscription

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
    if provider_message_id and not row.provider_message_id:
        row.provider_message_id = provider_message_id  # a send settled after a crash
    if _RANK.get(status, 0) >= _RANK.get(row.status, 0):
        row.status = status
        if status in ("failed", "bounced"):
            row.error = detail
    return True


def deactivate_address(session: Session, channel: str, address: str, reason: str,
                       source: str, opted_out: bool = False) -> None:
    """Stops using a dead address: a push subscription is deactivated, others suppressed.

    `opted_out` (the provider says the recipient unsubscribed) is a consent withdrawal.
    """
    if opted_out:
        consent_change(session, ConsentSignal(channel, address, KeywordAction.WITHDRAW,
                                              "provider_opt_out", source))
        return
    if channel == "push":
        try:
            endpoint = json.loads(address)["endpoint"]
        except (ValueError, KeyError, TypeError):
            endpoint = address
        session.execute(
            update(WebPushSubscription)
            .where(WebPushSubscription.endpoint == endpoint, WebPushSubscription.active)
            .values(active=False, deactivated_at=utcnow(), deactivated_reason=reason[:500]))
        return
    suppress(session, channel, address, "dead_address", source, reason)


def suppress(session: Session, channel: str, address: str, reason: str, source: str,
             detail: str | None = None) -> None:
    """Adds an active suppression unless one exists."""
    if not is_suppressed(session, channel, address):
        session.add(ChannelSuppression(channel=channel, address=address, reason=reason,
                                       source=source, detail=detail))


def lift(session: Session, channel: str, address: str) -> None:
    """Lifts the active suppressions of an address (the recipient opted back in)."""
    session.execute(
        update(ChannelSuppression)
        .where(ChannelSuppression.channel == channel, ChannelSuppression.address == address,
               ChannelSuppression.lifted_at.is_(None))
        .values(lifted_at=utcnow()))


def is_suppressed(session: Session, channel: str, address: str) -> bool:
    """True while an address has an unlifted suppression on the channel."""
    return session.scalar(
        select(ChannelSuppression.id).where(
            ChannelSuppression.channel == channel, ChannelSuppression.address == address,
            ChannelSuppression.lifted_at.is_(None)).limit(1)) is not None


def active_push_addresses(session: Session, customer_id: str) -> tuple[str, ...]:
    """The customer's live push subscriptions, newest first, as adapter addresses (JSON)."""
    rows = session.scalars(
        select(WebPushSubscription)
        .where(WebPushSubscription.customer_id == customer_id, WebPushSubscription.active)
        .order_by(WebPushSubscription.id.desc())).all()
    return tuple(json.dumps({"endpoint": r.endpoint, "keys": {"p256dh": r.p256dh,
                                                               "auth": r.auth}})
                 for r in rows)


def keyword_action(text: str) -> tuple[str, KeywordAction]:
    """The keyword an inbound message is (first word, case-insensitive), and its action."""
    word = (text or "").strip().split(maxsplit=1)[0].upper().strip(".!") if text.strip() else ""
    return word, KEYWORDS.get(word, KeywordAction.NONE)


def apply_inbound_keyword(session: Session, channel: str, address: str, text: str,
                          provider: str, provider_message_id: str | None) -> KeywordAction:
    """Records an inbound consent keyword (independent of any notification) and applies it.

    Idempotent per provider message id: a redelivered webhook changes nothing twice.
    """
    keyword, action = keyword_action(text)
    if action in (KeywordAction.NONE, KeywordAction.HELP):
        return action
    if provider_message_id and session.scalar(
            select(InboundKeyword.id).where(
                InboundKeyword.provider_message_id == provider_message_id)) is not None:
        return action
    session.add(InboundKeyword(channel=channel, address=address, keyword=keyword,
                               action=str(action), provider=provider,
                               provider_message_id=provider_message_id))
    consent_change(session, ConsentSignal(channel, address, action, keyword, provider))
    return action


def consent_change(session: Session, signal: ConsentSignal) -> None:
    """The single place where a channel-level consent signal takes effect.

    Today: a withdrawal suppresses the address on that channel, a grant lifts it. The
    consent ledger (preferences) plugs in here: append a withdrawn/granted row for every
    purpose on `signal.channel` for the customer(s) holding `signal.address`.
    """
    if signal.action is KeywordAction.WITHDRAW:
        suppress(session, signal.channel, signal.address, "recipient_opt_out", signal.source,
                 f"keyword {signal.keyword}")
    elif signal.action is KeywordAction.GRANT:
        lift(session, signal.channel, signal.address)
    log.info("consent_signal", channel=signal.channel, action=str(signal.action),
             source=signal.source)
