"""The send record: written before the provider call so that no message is ever sent twice."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from channels import ChannelAdapter, OutgoingMessage, SendResult
from hub import failpoints, provider_limits
from hub.db import Database, utcnow
from hub.logs import get_logger
from hub.metrics import SEND_LATENCY
from hub.models import Notification
from hub.receipts import deactivate_address
from hub.webhooks_out import record_status_change

log = get_logger("delivery")

# Statuses of a notification; `sending` is held only across the provider call.
SENDING, SENT, RETRY, FAILED, UNCONFIRMED = "sending", "sent", "retry", "failed", "unconfirmed"
DONE_STATUSES = {SENT, "delivered", "opened", "clicked", "bounced", "complained",
                 "unsubscribed"}  # the provider accepted it: never again
UNCONFIRMED_DETAIL = (
    "a worker stopped during the provider call and the provider cannot confirm it; "
    "not repeated, to avoid a duplicate"
)


def idempotency_key(event_pk: int, channel: str, address: str) -> str:
    """Unique per (event, channel, address): the unit that is sent at most once."""
    digest = hashlib.sha256(address.encode()).hexdigest()[:16]
    return f"{event_pk}:{channel}:{digest}"


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything recorded about a message besides the provider's answer."""

    event_pk: int
    customer_id: str
    tracking_number: str | None
    event_type: str
    channel: str
    address: str
    locale: str
    parts: dict[str, str]
    metadata: dict[str, Any]


def _history(row: Notification, status: str, detail: str | None = None) -> None:
    entry = {"status": status, "at": utcnow().isoformat()}
    if detail:
        entry["detail"] = detail
    row.history = [*(row.history or []), entry]
    row.status = status


def deliver(db: Database, adapter: ChannelAdapter, env: Envelope) -> SendResult:
    """Sends once: claims the send record, calls the provider, records the answer."""
    key = idempotency_key(env.event_pk, env.channel, env.address)
    # --- provider rate limit (issue 12 item 4): wait for a slot BEFORE the record says
    # `sending` (a kill -9 while waiting must not leave a record to mark unconfirmed) ---
    if (refused := provider_limits.wait_turn(adapter)) is not None:
        return refused  # next slot too far: deferred, no attempt counted
    earlier, notification_id = _claim(db, key, env, adapter)
    if earlier is not None:
        return earlier
    message = OutgoingMessage(key, env.channel, env.address, env.parts, env.locale, env.metadata)
    failpoints.reach(failpoints.BEFORE_SEND)
    started = time.perf_counter()
    try:
        result = adapter.send(message)
    except Exception as exc:  # an adapter bug must not leave the record in `sending`
        result = SendResult.transient(f"adapter error: {type(exc).__name__}: {exc}")
    SEND_LATENCY.labels(env.channel).observe(time.perf_counter() - started)
    provider_limits.after_send(adapter, result)  # rate limit: a 429 + Retry-After pauses it
    failpoints.reach(failpoints.AFTER_SEND)
    _record(db, key, result, adapter.name)
    log.info(
        "send",
        notification_id=notification_id,
        idempotency_key=key,
        channel=env.channel,
        adapter=adapter.name,
        ok=result.ok,
        error=result.error,
    )
    return result


def _claim(
    db: Database, key: str, env: Envelope, adapter: ChannelAdapter
) -> tuple[SendResult | None, int]:
    """Marks the record `sending` (committed) and returns its id, with a result instead if
    no send is owed."""
    with db.transaction() as session:
        row = session.scalar(select(Notification).where(Notification.idempotency_key == key))
        if row is None:
            row = Notification(
                idempotency_key=key,
                event_pk=env.event_pk,
                customer_id=env.customer_id,
                tracking_number=env.tracking_number,
                event_type=env.event_type,
                channel=env.channel,
                address=env.address,
                locale=env.locale,
                content=env.parts,
                history=[],
            )
            session.add(row)
            _history(row, SENDING)
            session.flush()
            return None, row.id
        if row.status in DONE_STATUSES:
            return SendResult.sent(row.provider_message_id or ""), row.id
        if row.status == UNCONFIRMED:
            return SendResult.permanent(UNCONFIRMED_DETAIL), row.id
        if row.status == FAILED:
            return SendResult.permanent(row.error or row.status), row.id
        if row.status == SENDING:
            # A worker died between the provider call and recording its answer.
            found = adapter.reconcile(key)
            if found is not None:
                row.provider_message_id = found.provider_message_id
                _history(row, SENT, "reconciled after a crash")
                return found, row.id
            if getattr(adapter, "authoritative_reconcile", False):
                _history(row, SENDING, "provider never got it; sending after a crash")
                return None, row.id
            row.error = UNCONFIRMED_DETAIL
            _history(row, UNCONFIRMED, row.error)
            return SendResult.permanent(UNCONFIRMED_DETAIL), row.id
        row.content = env.parts
        _history(row, SENDING)  # RETRY: the last attempt failed transiently
        return None, row.id


def _record(db: Database, key: str, result: SendResult, source: str) -> None:
    with db.transaction() as session:
        row = session.scalars(
            select(Notification).where(Notification.idempotency_key == key)
        ).one()
        if result.deactivate and row.address:
            deactivate_address(session, row.channel, row.address, result.error or "", source,
                               opted_out=result.opted_out)
        if result.ok:
            row.provider_message_id = result.provider_message_id
            row.error = None
            if row.status == SENDING:
                _history(row, SENT)
            else:  # a provider receipt (e.g. delivered) overtook the provider's answer
                row.history = [*row.history, {"status": SENT, "at": utcnow().isoformat()}]
        else:
            row.error = result.error
            _history(row, RETRY if result.error_class == "transient" else FAILED, result.error)
        record_status_change(session, None, row, SENT if result.ok else row.status)  # outgoing webhooks
