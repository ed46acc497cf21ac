"""Delivers queued outgoing webhook messages: signed per Standard Webhooks, at least once,
with exponential backoff for HUB_WEBHOOK_RETRY_HOURS, in order per notification, and safe
with several processes (a message is leased before it is sent; PostgreSQL also skips rows
another process has locked).

Ordering: a message is sent only when no earlier message of the same notification to the
same endpoint is still pending, so a receiver never sees `delivered` before `sent` has been
accepted. An endpoint that keeps failing is disabled, with an ops alert.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import aliased
from standardwebhooks.webhooks import Webhook

from hub.alerts import OpsAlerts
from hub.db import Database, utcnow
from hub.logs import get_logger
from hub.models import WebhookDelivery, WebhookEndpoint
from hub.settings import Settings
from hub.webhook_url_check import WebhookUrlRefused, check_webhook_url

log = get_logger("webhook_sender")

Clock = Callable[[], datetime]
LEASE = timedelta(seconds=120)
FIRST_RETRY_SECONDS = 5.0
LONGEST_RETRY_SECONDS = 3600.0
LOG_ENTRIES = 20  # attempts kept in a message's log


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased message with what sending it needs."""

    id: int
    msg_id: str
    url: str
    secret: str
    body: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """The answer of one delivery attempt."""

    ok: bool
    status_code: int | None
    error: str | None
    at: datetime


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s... doubling up to one hour between attempts."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0),
                                 LONGEST_RETRY_SECONDS))


def sign(secret: str, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (timestamp = the attempt's wall time)."""
    stamp = at.astimezone(UTC)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, stamp, body),
            "content-type": "application/json"}


class WebhookSender:
    """Claims due messages and posts them; `clock` is injectable (scheduling and expiry use
    it; signatures always carry the real time, which receivers check)."""

    def __init__(self, db: Database, settings: Settings, alerts: OpsAlerts | None = None,
                 clock: Clock = utcnow, client: httpx.Client | None = None) -> None:
        self.db = db
        self.settings = settings
        self.alerts = alerts if alerts is not None else OpsAlerts.from_settings(settings)
        self.clock = clock
        self.client = client or httpx.Client(timeout=settings.webhook_timeout_seconds,
                                             follow_redirects=False)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def run_once(self, limit: int = 20) -> int:
        """Sends one batch of due messages; returns how many were attempted."""
        claimed = self.claim(limit)
        for message in claimed:
            self.settle(message.id, self.attempt(message))
        return len(claimed)

    def claim(self, limit: int) -> list[Claimed]:
        """Leases due messages whose predecessors (same endpoint, same notification) are
        settled, on enabled endpoints."""
        now = self.clock()
        earlier = aliased(WebhookDelivery)
        blocked = exists().where(
            earlier.endpoint_id == WebhookDelivery.endpoint_id,
            earlier.order_key == WebhookDelivery.order_key,
            earlier.id < WebhookDelivery.id, earlier.state == "pending")
        query = (select(WebhookDelivery, WebhookEndpoint)
                 .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                 .where(WebhookDelivery.state == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                        or_(WebhookDelivery.lease_until.is_(None),
                            WebhookDelivery.lease_until < now),
                        and_(WebhookEndpoint.enabled.is_(True),
                             WebhookEndpoint.deleted_at.is_(None)),
                        ~blocked)
                 .order_by(WebhookDelivery.id).limit(limit))
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        out = []
        with self.db.transaction() as session:
            for delivery, endpoint in session.execute(query).all():
                delivery.lease_owner, delivery.lease_until = self.name, now + LEASE
                body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
                out.append(Claimed(delivery.id, delivery.msg_id, endpoint.url, endpoint.secret,
                                   body))
        return out

    def attempt(self, message: Claimed) -> Attempt:
        """One POST; only a 2xx answer counts as delivered (redirects are not followed)."""
        sent_at = datetime.now(UTC)
        try:
            check_webhook_url(message.url, self.settings.webhooks_allow_loopback)
            response = self.client.post(message.url, content=message.body.encode(),
                                        headers=sign(message.secret, message.msg_id,
                                                     message.body, sent_at))
        except WebhookUrlRefused as exc:
            return Attempt(False, None, f"refused: {exc}", self.clock())
        except httpx.HTTPError as exc:
            return Attempt(False, None, f"{type(exc).__name__}", self.clock())
        ok = 200 <= response.status_code < 300
        return Attempt(ok, response.status_code, None if ok else f"HTTP {response.status_code}",
                       self.clock())

    def settle(self, delivery_id: int, result: Attempt) -> None:
        """Records the attempt: delivered, retried later, or given up after the retry
        window; updates the endpoint's failure streak and disables it when it is too long."""
        with self.db.transaction() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
            delivery.attempts += 1
            delivery.lease_owner, delivery.lease_until = None, None
            delivery.last_status_code, delivery.last_error = result.status_code, result.error
            entry = {"at": result.at.isoformat(), "status_code": result.status_code,
                     "error": result.error, "ok": result.ok}
            delivery.log = [*(delivery.log or []), entry][-LOG_ENTRIES:]
            if result.ok:
                delivery.state, delivery.settled_at = "succeeded", result.at
            elif result.at - delivery.created_at >= timedelta(
                    hours=self.settings.webhook_retry_hours):
                delivery.state, delivery.settled_at = "failed", result.at
            else:
                delivery.next_attempt_at = result.at + retry_delay(delivery.attempts)
            if endpoint is not None:
                self._streak(endpoint, result)
        log.info("webhook_attempt", delivery_id=delivery_id, ok=result.ok,
                 status_code=result.status_code)

    def _streak(self, endpoint: WebhookEndpoint, result: Attempt) -> None:
        if result.ok:
            endpoint.consecutive_failures, endpoint.failing_since = 0, None
            return
        endpoint.consecutive_failures += 1
        endpoint.failing_since = endpoint.failing_since or result.at
        too_many = endpoint.consecutive_failures >= self.settings.webhook_disable_after_failures
        too_long = result.at - endpoint.failing_since >= timedelta(
            hours=self.settings.webhook_disable_after_hours)
        if endpoint.enabled and (too_many or too_long):
            endpoint.enabled = False
            endpoint.disabled_reason = (
                f"{endpoint.consecutive_failures} consecutive failed attempts since "
                f"{endpoint.failing_since:%Y-%m-%dT%H:%MZ}")
            log.warning("webhook_endpoint_disabled", endpoint=endpoint.public_id)
            self.alerts.notify("Parcel Hub: webhook endpoint disabled",
                               f"Endpoint {endpoint.public_id} (tenant {endpoint.tenant}, "
                               f"producer {endpoint.producer}) was disabled: "
                               f"{endpoint.disabled_reason}.")

    def run_forever(self, stopped: Callable[[], bool], poll_seconds: float = 1.0) -> None:
        """Sends until `stopped()` is true; waits `poll_seconds` when nothing is due."""
        pause = threading.Event()
        while not stopped():
            try:
                ran = self.run_once()
            except Exception:
                log.exception("webhook_sender_error")
                ran = 0
            if not ran:
                pause.wait(poll_seconds)
        self.client.close()


def start_webhook_sender(db: Database, settings: Settings,
                         owner: Callable[[], threading.Thread | None] | threading.Event,
                         ) -> threading.Thread:
    """Runs a sender in a daemon thread until the `owner` event is set, or until the thread
    `owner()` returns (the worker's, once started) has ended."""
    def stopped() -> bool:
        if isinstance(owner, threading.Event):
            return owner.is_set()
        thread = owner()
        return thread is not None and not thread.is_alive()

    sender = WebhookSender(db, settings)
    thread = threading.Thread(target=sender.run_forever, args=(stopped,),
                              name="hub-webhooks", daemon=True)
    thread.start()
    return thread


def describe(delivery: WebhookDelivery) -> dict[str, Any]:
    """A message as the delivery log API shows it."""
    return {"id": delivery.id, "msg_id": delivery.msg_id, "event_type": delivery.event_type,
            "state": delivery.state, "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at.isoformat()
            if delivery.state == "pending" else None,
            "last_status_code": delivery.last_status_code, "last_error": delivery.last_error,
            "created_at": delivery.created_at.isoformat(),
            "settled_at": delivery.settled_at.isoformat() if delivery.settled_at else None,
            "payload": delivery.payload, "log": delivery.log}
