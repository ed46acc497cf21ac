"""Provider receipts (signed webhooks), inbound SMS keywords, and the Web Push public key.

Twilio signs with HMAC-SHA1 over the URL it was given plus the POST parameters
(X-Twilio-Signature); it has no timestamp, and its receipts are idempotent here (history
entries are de-duplicated, statuses only move forward). SendGrid signs the Event Webhook
with ECDSA over timestamp + body; a timestamp outside the replay window is refused.
Missing signature → 401; wrong signature or replay → 403; either way nothing changes. A
webhook of a provider this hub is not configured for answers 404 (it does not exist here).
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from hub.api.problems import Problem
from hub.customers import tombstone_key
from hub.db import retry_on_conflict
from hub.models import DEFAULT_TENANT
from hub.receipts import (
    ConsentSignal,
    KeywordAction,
    apply_inbound_keyword,
    apply_status,
    consent_change,
    deactivate_address,
    find_notification,
    notification_tenant,
)
from hub.settings import Settings
from hub.transports import push_public_key

router = APIRouter(prefix="/v1", tags=["channels"])

TWILIO_STATUS = {"accepted": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
                 "delivered": "delivered", "undelivered": "failed", "failed": "failed",
                 "read": "opened"}
SENDGRID_STATUS = {"processed": "sent", "deferred": None, "delivered": "delivered",
                   "bounce": "bounced", "dropped": "failed", "spamreport": "complained",
                   "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed",
                   "open": "opened", "click": "clicked"}
SG_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SG_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


async def _twilio_form(request: Request) -> dict[str, str]:
    """The POST parameters, after checking X-Twilio-Signature against the URL Twilio used."""
    settings = _settings(request)
    if settings.twilio_auth_token is None:
        raise Problem(404, "not-configured", "Twilio is not configured on this hub.")
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise Problem(401, "unsigned", "X-Twilio-Signature is missing.")
    params = {k: str(v) for k, v in (await request.form()).multi_items()}
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not validator.validate(url, params, signature):
        raise Problem(403, "bad-signature", "X-Twilio-Signature does not match this request.")
    return params


@router.post("/webhooks/twilio/status", status_code=204, response_class=Response)
async def twilio_status(request: Request) -> Response:
    """Twilio's status callback: moves the notification's status (sent → delivered...)."""
    params = await _twilio_form(request)
    status = TWILIO_STATUS.get(params.get("MessageStatus", ""))
    if status is not None:
        await run_in_threadpool(_twilio_status, request, params, status)
    return Response(status_code=204)


@retry_on_conflict  # receipts posted twice at once: one applies, one no-ops
def _twilio_status(request: Request, params: dict[str, str], status: str) -> None:
    sid, code = params.get("MessageSid"), params.get("ErrorCode")
    with request.app.state.runtime.db.transaction() as session:
        row = find_notification(session, request.query_params.get("key"), sid)
        if row is None:
            return
        detail = f"twilio error {code}" if code else None
        apply_status(row, status, provider_message_id=sid, detail=detail,
                     receipt_id=f"twilio:{sid}:{params.get('MessageStatus')}", source="twilio")
        if code in ("21610", "30004", "30005", "30006") and row.address:
            # unsubscribed, blocked, unknown or landline destination: stop using it
            deactivate_address(session, "sms", row.address, f"twilio error {code}", "twilio",
                               opted_out=code == "21610", tenant=notification_tenant(session, row),
                               key=tombstone_key(_settings(request)))


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    """An SMS from a recipient to the default tenant's number: STOP/START (and synonyms)
    withdraw or grant SMS consent."""
    params = await _twilio_form(request)
    await run_in_threadpool(_twilio_inbound, request, params, DEFAULT_TENANT)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/webhooks/twilio/inbound/{tenant}")
async def twilio_inbound_tenant(
    request: Request, tenant: str = Path(min_length=1, max_length=64, pattern=r"^[\w.-]+$"),
) -> Response:
    """The same for a tenant's own numbers: each tenant's Twilio numbers point their
    inbound webhook here; Twilio signs the full URL, so the tenant cannot be forged."""
    params = await _twilio_form(request)
    await run_in_threadpool(_twilio_inbound, request, params, tenant)
    return Response(EMPTY_TWIML, media_type="text/xml")


@retry_on_conflict
def _twilio_inbound(request: Request, params: dict[str, str], tenant: str) -> KeywordAction:
    with request.app.state.runtime.db.transaction() as session:
        return apply_inbound_keyword(session, "sms", params.get("From", ""),
                                     params.get("Body", ""), "twilio", params.get("MessageSid"),
                                     tenant=tenant, key=tombstone_key(_settings(request)))


@router.post("/webhooks/sendgrid/events")
async def sendgrid_events(request: Request) -> dict[str, int]:
    """SendGrid's signed Event Webhook: delivered, bounce, dropped, open, click..."""
    settings = _settings(request)
    if not settings.sendgrid_webhook_public_key:
        raise Problem(404, "not-configured", "The SendGrid webhook key is not configured.")
    signature, stamp = request.headers.get(SG_SIGNATURE), request.headers.get(SG_TIMESTAMP)
    if not signature or not stamp:
        raise Problem(401, "unsigned", f"{SG_SIGNATURE} and {SG_TIMESTAMP} are required.")
    body = (await request.body()).decode("utf-8", "replace")
    if not _sendgrid_signed(settings.sendgrid_webhook_public_key, body, signature, stamp):
        raise Problem(403, "bad-signature", "The event webhook signature does not verify.")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > settings.webhook_max_age_seconds:
        raise Problem(403, "replayed", "The event webhook timestamp is outside the window.")
    try:
        events = json.loads(body)
        assert isinstance(events, list)
    except (ValueError, AssertionError) as exc:
        raise Problem(400, "malformed-json", "Expected a JSON array of events.") from exc
    applied = await run_in_threadpool(_sendgrid_apply, request, events)
    return {"received": len(events), "applied": applied}


def _sendgrid_signed(public_key: str, body: str, signature: str, stamp: str) -> bool:
    from sendgrid.helpers.eventwebhook import EventWebhook

    try:
        return bool(EventWebhook(public_key).verify_signature(body, signature, stamp))
    except (ValueError, TypeError):
        return False


@retry_on_conflict
def _sendgrid_apply(request: Request, events: list[Any]) -> int:
    applied = 0
    with request.app.state.runtime.db.transaction() as session:
        for event in events:
            if not isinstance(event, dict):
                continue
            kind = str(event.get("event", ""))
            provider_id = str(event.get("sg_message_id", "")).split(".", 1)[0] or None
            row = find_notification(session, event.get("idempotency_key"), provider_id)
            status = SENDGRID_STATUS.get(kind)
            if row is None or (status is None and kind != "deferred"):
                continue
            detail = event.get("reason") or event.get("response") or event.get("url")
            receipt = f"sendgrid:{event.get('sg_event_id') or kind}"
            if status is None:  # deferred: history only
                status = row.status
            if apply_status(row, status, detail=str(detail) if detail else None,
                            receipt_id=receipt, source="sendgrid"):
                applied += 1
                _sendgrid_address_effects(session, kind, event, row.address,
                                          notification_tenant(session, row),
                                          tombstone_key(_settings(request)))
    return applied


def _sendgrid_address_effects(session: Any, kind: str, event: dict[str, Any],
                              address: str | None, tenant: str, key: str) -> None:
    if not address:
        return
    if kind == "bounce" and event.get("type", "bounce") == "bounce":
        deactivate_address(session, "email", address, f"hard bounce: {event.get('reason')}",
                           "sendgrid", tenant=tenant, key=key)
    elif kind in ("unsubscribe", "group_unsubscribe", "spamreport"):
        consent_change(session, ConsentSignal("email", address, KeywordAction.WITHDRAW,
                                              kind, "sendgrid", tenant), key)


@router.get("/push/vapid-public-key")
def vapid_public_key(request: Request) -> dict[str, str]:
    """The applicationServerKey for PushManager.subscribe() (public; no key needed)."""
    key = push_public_key(_settings(request))
    if key is None:
        raise Problem(404, "not-configured", "Web Push is not configured (hub keys vapid).")
    return {"public_key": key}
