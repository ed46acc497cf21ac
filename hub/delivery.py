"""The send record: written before the provider call so that no message is ever sent twice.

Records are opened for a whole batch in one transaction (`open_sends`), the provider calls
run outside any transaction (`call`), and their answers are recorded for the batch in one
transaction again (`record_results`). A call whose outcome is unknown (a timeout after the
request went out) is asked back from the provider; where the provider cannot tell, the record
becomes `unconfirmed` and is never sent again.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from channels import ChannelAdapter, ErrorClass, OutgoingMessage, SendResult
from channels.ratelimit import ProviderRateLimiter
from hub import failpoints, provider_limits
from hub.db import Database, utcnow
from hub.logs import get_logger
from hub.metrics import IN_FLIGHT, PROVIDER_LATENCY, SEND_LATENCY, UNKNOWN_OUTCOMES
from hub.models import DEFAULT_TENANT, Notification
from hub.receipts import deactivate_address
from hub.settings import get_settings
from hub.webhooks_out import NotificationRef, StatusChange, record_status_changes

if TYPE_CHECKING:
    from hub.clicks import LinkSet

log = get_logger("delivery")

# Statuses of a notification; `sending` is held only across the provider call.
SENDING, SENT, RETRY, FAILED, UNCONFIRMED = "sending", "sent", "retry", "failed", "unconfirmed"
DONE_STATUSES = {SENT, "delivered", "opened", "clicked", "bounced", "complained",
                 "unsubscribed"}  # the provider accepted it: never again
UNCONFIRMED_DETAIL = (
    "a worker stopped during the provider call and the provider cannot confirm it; "
    "not repeated, to avoid a duplicate"
)
TIMEOUT_DETAIL = (
    "the provider call timed out after the request was sent and the provider cannot confirm "
    "it; not repeated, to avoid a duplicate"
)
# Errors after which the provider may well have the message: read timeouts, a reply cut off.
# A refused or timed-out *connect* never reached the provider and stays a plain transient.
_MAYBE_DELIVERED = re.compile(
    r"ReadTimeout|ReadTimeoutError|TimeoutError|timed out|socket\.timeout|RemoteDisconnected"
    r"|IncompleteRead|ChunkedEncodingError|SMTPServerDisconnected")
_NEVER_SENT = re.compile(r"ConnectTimeout|ConnectTimeoutError|NewConnectionError|refused")
T = cast(Table, Notification.__table__)


class SendMode(enum.StrEnum):
    CALL = "call"  # a fresh record (or a retry): call the provider
    RECONCILE = "reconcile"  # an earlier worker stopped mid-call: ask the provider first
    SETTLED = "settled"  # nothing owed; `result` holds the earlier answer
    WAIT = "wait"  # another worker's call may still be in flight: leave it until `wait_until`


def idempotency_key(secret: str, event_pk: int, channel: str, address: str) -> str:
    """Unique per (event, channel, address): the unit that is sent at most once. The address
    part is an HMAC under the hub's secret, so a logged key does not reveal the address."""
    digest = hmac.new(secret.encode(), f"send-record:{channel}:{address}".encode(),
                      hashlib.sha256).hexdigest()[:24]
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
    tenant: str = DEFAULT_TENANT


@dataclass(slots=True)
class Send:
    """One message through its send record: opened, called, recorded."""

    key: str
    env: Envelope
    adapter: ChannelAdapter
    mode: SendMode = SendMode.CALL
    result: SendResult | None = None
    wait_until: datetime | None = None
    note: str | None = None  # history detail for the recorded answer
    event_id: str | None = None  # the producer's event id, for the logs
    job_id: int | None = None
    context: Any = field(default=None, repr=False)  # the caller's own bookkeeping
    links: LinkSet | None = None  # tracked links of a campaign/loyalty message (hub.clicks)


def _entry(status: str, now: datetime, detail: str | None = None) -> dict[str, str]:
    entry = {"status": status, "at": now.isoformat()}
    if detail:
        entry["detail"] = detail
    return entry


def open_sends(session: Session, sends: list[Send], in_doubt_seconds: float) -> None:
    """Commits (with the caller's transaction) a `sending` record for every send that owes a
    provider call and sets each send's mode; never calls a provider."""
    now = utcnow()
    conn = session.connection()
    existing = {r.idempotency_key: r for r in conn.execute(
        _RECORDS_TO_OPEN, {"b_keys": [s.key for s in sends]})}
    fresh, resent = [], []
    for send in sends:
        row = existing.get(send.key)
        if row is None:
            fresh.append(_new_record(send, now))
            send.mode = SendMode.CALL
        elif row.status in DONE_STATUSES:
            send.mode, send.result = SendMode.SETTLED, SendResult.sent(row.provider_message_id or "")
        elif row.status == UNCONFIRMED:
            send.mode, send.result = SendMode.SETTLED, SendResult.permanent(UNCONFIRMED_DETAIL)
        elif row.status == FAILED:
            send.mode, send.result = SendMode.SETTLED, SendResult.permanent(row.error or FAILED)
        elif row.status == SENDING and row.updated_at + timedelta(seconds=in_doubt_seconds) > now:
            # Younger than the longest provider call: its worker may still be waiting for
            # the answer. Reconciling now could send a second copy.
            send.mode = SendMode.WAIT
            send.wait_until = row.updated_at + timedelta(seconds=in_doubt_seconds)
        elif row.status == SENDING:
            send.mode = SendMode.RECONCILE
        else:  # RETRY: the last attempt failed transiently
            send.mode = SendMode.CALL
            resent.append({"b_id": row.id, "b_content": send.env.parts, "b_status": SENDING,
                           "b_history": [*(row.history or []), _entry(SENDING, now)],
                           "b_updated_at": now})
    if fresh:
        conn.execute(_OPEN, fresh)
    if resent:
        conn.execute(_REOPEN, resent)


def _new_record(send: Send, now: datetime) -> dict[str, Any]:
    env = send.env
    return {"idempotency_key": send.key, "event_pk": env.event_pk,
            "customer_id": env.customer_id, "tracking_number": env.tracking_number,
            "event_type": env.event_type, "channel": env.channel, "address": env.address,
            "locale": env.locale, "content": env.parts, "status": SENDING,
            "history": [_entry(SENDING, now)], "created_at": now, "updated_at": now}


def call(send: Send, rate_limiter: ProviderRateLimiter | None = None) -> SendResult:
    """The provider call of one opened send (runs outside any transaction)."""
    adapter = send.adapter
    if send.mode is SendMode.RECONCILE:
        found = adapter.reconcile(send.key)  # an earlier worker stopped during its call
        if found is not None:
            send.note = "reconciled after a crash"
            return found
        if not getattr(adapter, "authoritative_reconcile", False):
            send.note = UNCONFIRMED_DETAIL
            return SendResult.permanent(UNCONFIRMED_DETAIL)
        send.note = "provider never got it; sending after a crash"
    message = OutgoingMessage(send.key, send.env.channel, send.env.address, send.env.parts,
                              send.env.locale, send.env.metadata)
    failpoints.reach(failpoints.BEFORE_SEND)
    # --- provider rate limit (HUB_*_MPS): the one place a send waits for its bucket; a
    # slot further than HUB_RATE_LIMIT_MAX_WAIT_SECONDS defers the send unattempted ---
    if rate_limiter is not None and (
            refused := provider_limits.wait_turn(adapter, rate_limiter)) is not None:
        return refused
    result = _timed_send(adapter, message, send.env.channel)
    if rate_limiter is not None:
        provider_limits.after_send(adapter, result, rate_limiter)  # 429 + Retry-After
    failpoints.reach(failpoints.AFTER_SEND)
    if maybe_delivered(result):
        return _settle_unknown(send, result)
    return result


def _timed_send(adapter: ChannelAdapter, message: OutgoingMessage, channel: str) -> SendResult:
    IN_FLIGHT.inc()
    started = time.perf_counter()
    try:
        return adapter.send(message)
    except Exception as exc:  # an adapter bug must not leave the record in `sending`
        return SendResult.transient(f"adapter error: {type(exc).__name__}: {exc}")
    finally:
        IN_FLIGHT.dec()
        elapsed = time.perf_counter() - started
        SEND_LATENCY.labels(channel).observe(elapsed)
        PROVIDER_LATENCY.labels(adapter.name).observe(elapsed)


def maybe_delivered(result: SendResult) -> bool:
    """A transient error after which the provider may have the message (unknown outcome)."""
    if result.ok or result.error_class is not ErrorClass.TRANSIENT or result.circuit_open:
        return False
    error = result.error or ""
    return bool(_MAYBE_DELIVERED.search(error)) and not _NEVER_SENT.search(error)


def _settle_unknown(send: Send, result: SendResult) -> SendResult:
    """Asks the provider whether it got the message; unconfirmed if it cannot tell."""
    adapter = send.adapter
    try:
        found = adapter.reconcile(send.key)
    except Exception:  # the provider is still unwell: it cannot tell now
        found = None
    if found is not None:
        UNKNOWN_OUTCOMES.labels(adapter.name, "reconciled").inc()
        send.note = f"reconciled after: {result.error}"
        return found
    if getattr(adapter, "authoritative_reconcile", False):
        UNKNOWN_OUTCOMES.labels(adapter.name, "not_received").inc()
        return result  # the provider proves it never got it: an ordinary retry
    UNKNOWN_OUTCOMES.labels(adapter.name, "unconfirmed").inc()
    send.note = TIMEOUT_DETAIL
    return SendResult.permanent(TIMEOUT_DETAIL)


def is_unconfirmed(result: SendResult) -> bool:
    """The answer says "most likely delivered, cannot confirm": never resent, no fallback."""
    return result.error in (UNCONFIRMED_DETAIL, TIMEOUT_DETAIL)


def record_results(session: Session, sends: list[Send], erasure_key: str | None = None
                   ) -> None:
    """Writes the provider answers of a batch into their send records (one transaction);
    `erasure_key` keys the suppressions of addresses the provider calls dead."""
    now = utcnow()
    rows = {r.idempotency_key: r for r in session.connection().execute(
        _RECORDS_TO_ANSWER, {"b_keys": [s.key for s in sends]})}
    updates: list[dict[str, Any]] = []
    changes: list[StatusChange] = []
    for send in sends:
        row, result = rows.get(send.key), send.result
        if row is None or result is None:
            continue
        if result.deactivate and send.env.address:
            deactivate_address(session, send.env.channel, send.env.address, result.error or "",
                               send.adapter.name, opted_out=result.opted_out,
                               tenant=send.env.tenant, key=erasure_key)
        updates.append(_answer(row, send, result, now))
        changes.append(StatusChange(  # outgoing webhooks (same transaction as the answer)
            send.env.tenant, NotificationRef(row.id, send.env.event_pk, send.env.event_type,
                                             send.env.channel),
            SENT if result.ok else updates[-1]["b_status"]))
        log.info("send", notification_id=row.id, idempotency_key=send.key,
                 event_id=send.event_id, job_id=send.job_id,
                 channel=send.env.channel, adapter=send.adapter.name, ok=result.ok,
                 error=result.error)
    if updates:
        session.connection().execute(_ANSWER, updates)
    record_status_changes(session, changes)


# The send record's statements, built once (every batch runs them).
_KEYS = bindparam("b_keys", expanding=True)
_RECORDS_TO_OPEN = select(T.c.id, T.c.idempotency_key, T.c.status, T.c.provider_message_id,
                          T.c.error, T.c.history, T.c.updated_at).where(T.c.idempotency_key.in_(_KEYS))
_RECORDS_TO_ANSWER = select(T.c.id, T.c.idempotency_key, T.c.status, T.c.history,
                            T.c.provider_message_id).where(T.c.idempotency_key.in_(_KEYS))
_OPEN = insert(T)
_REOPEN = update(T).where(T.c.id == bindparam("b_id")).values(
    content=bindparam("b_content"), status=bindparam("b_status"), history=bindparam("b_history"),
    updated_at=bindparam("b_updated_at"))
_ANSWER = update(T).where(T.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), history=bindparam("b_history"),
    provider_message_id=bindparam("b_pid"), error=bindparam("b_error"),
    updated_at=bindparam("b_updated_at"))


def _answer(row: Any, send: Send, result: SendResult, now: datetime) -> dict[str, Any]:
    history = list(row.history or [])
    if result.ok:
        # a provider receipt (e.g. delivered) may have overtaken the provider's answer
        status = SENT if row.status == SENDING else row.status
        history.append(_entry(SENT, now, send.note))
        return {"b_id": row.id, "b_status": status, "b_history": history,
                "b_pid": result.provider_message_id, "b_error": None, "b_updated_at": now}
    if is_unconfirmed(result):
        status = UNCONFIRMED
    else:
        status = RETRY if result.error_class is ErrorClass.TRANSIENT else FAILED
    history.append(_entry(status, now, result.error))
    return {"b_id": row.id, "b_status": status, "b_history": history,
            "b_pid": row.provider_message_id, "b_error": result.error, "b_updated_at": now}


def deliver(db: Database, adapter: ChannelAdapter, env: Envelope,
            secret: str | None = None) -> SendResult:
    """Sends one message once, outside the engine (test-send, tools): open, call, record."""
    secret = secret or get_settings().secret_key.get_secret_value()
    send = Send(idempotency_key(secret, env.event_pk, env.channel, env.address), env, adapter)
    with db.transaction() as session:
        open_sends(session, [send], in_doubt_seconds=0.0)
    if send.mode is SendMode.SETTLED and send.result is not None:
        return send.result
    send.result = call(send)
    with db.transaction() as session:
        record_results(session, [send])
    return send.result
