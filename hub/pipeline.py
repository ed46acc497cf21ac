"""One outbox job through the stages: resolve → decide → render → send, with a Decision per channel."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from channels import ChannelAdapter, ErrorClass
from hub import failpoints
from hub.customers import (
    Recipient,
    customer_key,
    erased_recipient,
    load_recipient,
    send_fence,
    tombstone_key,
    upsert_inline,
)
from hub.db import Database, utcnow
from hub.delivery import UNCONFIRMED_DETAIL, Envelope, deliver
from hub.events import EventType, event_types
from hub.gdpr import scrub_erased_event
from hub.logs import get_logger
from hub.models import Event, OutboxJob
from hub.settings import get_settings
from preferences import EventFacts, Profile, Resolution, resolve
from preferences.model import Frequency, Preferences
from templates import DIGEST, RenderedMessage, Renderer, RenderError, RenderRequest
from templates.renderer import TemplateMissing
from throttling import DigestBatch, Limiter, ThrottleRequest, Verdict

log = get_logger("pipeline")


class Outcome(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    FAILED = "failed"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class ChannelDecision:
    channel: str
    outcome: Outcome
    reason: str
    detail: str | None = None
    until: datetime | None = None
    retry_after: float | None = None


@dataclass(slots=True)
class JobOutcome:
    """How a run ends: done, deferred to `defer_until`, or retried after a transient error."""

    event_pk: int
    decisions: list[ChannelDecision] = field(default_factory=list)
    defer_until: datetime | None = None
    transient_error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Stages:
    """The stage implementations the pipeline calls (filled by the stage packages)."""

    limiter: Limiter
    renderer: Renderer
    transports: dict[str, ChannelAdapter]


@dataclass(frozen=True, slots=True)
class _Loaded:
    event_pk: int
    payload: dict[str, Any]
    profile: Profile
    recipient: Recipient
    throttling: dict[str, Any] = field(default_factory=dict)  # the limiter's overrides

    @property
    def etype(self) -> EventType:
        return event_types()[self.payload["type"]]


class Pipeline:
    """Runs the stages for an event and records why each channel was used or not."""

    def __init__(self, db: Database, stages: Stages, erasure_key: str | None = None) -> None:
        self.db = db
        self.stages = stages
        self.erasure_key = erasure_key or tombstone_key(get_settings())

    def housekeeping(self) -> None:
        """Daily: the limiter forgets counters and parcel statuses nobody touched for weeks."""
        purge = getattr(self.stages.limiter, "purge", None)
        if purge is not None:
            log.info("throttle_purge", rows=purge(utcnow()))

    def load(self, job_id: int) -> _Loaded | None:
        """Reads the job's event and applies its inline customer details to the profile."""
        with self.db.transaction() as session:
            job = session.get(OutboxJob, job_id)
            if job is None or job.state != "pending":
                return None
            event = session.get(Event, job.event_pk)
            if event is None or event.payload is None:
                return None
            payload = event.payload
            tenant, ref = event.tenant, payload["customer"]
            customer = upsert_inline(session, tenant, ref, self.erasure_key,
                                     occurred_at=event.occurred_at)
            if customer is None:  # erased: the event keeps nothing personal
                recipient = erased_recipient(ref["id"], customer_key(self.erasure_key, tenant,
                                                                     ref["id"]))
                scrub_erased_event(event, self.erasure_key)
            else:
                recipient = load_recipient(session, customer, self.erasure_key)
            event.state = "processing"
            session.flush()
            raw = {} if customer is None else dict(customer.preferences or {})
            return _Loaded(event.id, payload, recipient.profile, recipient,
                           throttle_overrides(recipient.preferences, raw))

    def run(self, job_id: int) -> JobOutcome | None:
        """Processes one job; returns None if the job no longer exists or is finished."""
        loaded = self.load(job_id)
        if loaded is None:
            return None
        with structlog.contextvars.bound_contextvars(event_id=loaded.payload["event_id"]):
            etype, recipient = loaded.etype, loaded.recipient
            resolution = resolve(EventFacts(etype.name, etype.category, etype.urgent),
                                 recipient.profile, recipient.preferences, recipient.consents,
                                 enabled_channels=tuple(self.stages.transports))
            outcome = self._route(loaded, resolution)
            log.info("processed", decisions=[f"{d.channel}:{d.outcome}:{d.reason}"
                                             for d in outcome.decisions])
            return outcome

    def _route(self, loaded: _Loaded, resolution: Resolution) -> JobOutcome:
        """Walks the routes in the customer's order: the first that sends wins, later ones
        are fallbacks used only after a permanent failure."""
        outcome = JobOutcome(loaded.event_pk)
        settled: ChannelDecision | None = None
        for route in resolution.routes:
            if route.action != "send":
                decision = ChannelDecision(route.channel, Outcome.SKIPPED, route.reason,
                                           route.detail)
            elif settled is not None:
                decision = _after(settled, route.channel)
            else:
                decision = self._send_one(loaded, resolution, route.channel, route.address or "")
                settled = None if decision.outcome is Outcome.FAILED else decision
                if decision.outcome is Outcome.DEFERRED and decision.until is not None:
                    outcome.defer_until = decision.until
                elif decision.outcome is Outcome.DEFERRED:
                    outcome.transient_error = decision.detail or decision.reason
                    outcome.retry_after = decision.retry_after
            outcome.decisions.append(decision)
        return outcome

    def _send_one(
        self, loaded: _Loaded, resolution: Resolution, channel: str, address: str
    ) -> ChannelDecision:
        payload, profile, etype = loaded.payload, loaded.profile, loaded.etype
        parcel = payload.get("parcel") or {}
        request = throttle_request(loaded, channel)
        verdict = self.stages.limiter.check(request)
        if verdict.verdict is Verdict.DROP:
            return ChannelDecision(channel, Outcome.DROPPED, verdict.reason)
        if verdict.verdict is Verdict.DEFER:
            return ChannelDecision(
                channel, Outcome.DEFERRED, verdict.reason, f"until {verdict.until:%Y-%m-%dT%H:%M%z}"
                if verdict.until else None, verdict.until
            )
        renderer = self.stages.renderer
        context = renderer.context(
            payload, {"customer_id": profile.customer_id, "tenant": loaded.recipient.tenant,
                      "event_ref": loaded.event_pk,  # delivery feedback: signed rating links
                      "name": profile.name,
                      "segment": profile.segment, "time_zone": profile.time_zone},
            now=utcnow(), channel=channel, category=etype.category,
            items=digest_items(verdict.digest) if verdict.digest else None)
        try:
            rendered = renderer.render(RenderRequest(DIGEST if verdict.digest else etype.name,
                                                     channel, resolution.locales,
                                                     resolution.tone, context))
        except RenderError as exc:
            self.stages.limiter.release(request)
            reason = "template_missing" if isinstance(exc, TemplateMissing) else "render_error"
            return ChannelDecision(channel, Outcome.FAILED, reason, str(exc))
        failpoints.reach(failpoints.RENDERED)
        adapter = self.stages.transports.get(channel)
        if adapter is None:
            self.stages.limiter.release(request)
            return ChannelDecision(channel, Outcome.FAILED, "channel_unavailable")
        with send_fence(self.db, loaded.recipient.tenant, self.erasure_key,
                        profile.customer_id) as alive:  # an erasure waits for this send
            if not alive:
                self.stages.limiter.release(request)
                return ChannelDecision(channel, Outcome.SKIPPED, "erased",
                                       "erased while the job was in flight; not sent")
            result = deliver(self.db, adapter, Envelope(
                loaded.event_pk, profile.customer_id, parcel.get("tracking_number"), etype.name,
                channel, address, rendered.locale, rendered.parts,
                _metadata(etype, parcel, channel, rendered, context.links.unsubscribe)))
        if result.ok:
            fallback = (f"; template fallback: {', '.join(rendered.fallbacks)}"
                        if rendered.fallbacks else "")
            return ChannelDecision(channel, Outcome.SENT, "sent",
                                   f"{result.provider_message_id}{fallback}")
        if result.error == UNCONFIRMED_DETAIL:
            # Most likely delivered: neither retried nor failed over to another channel.
            return ChannelDecision(channel, Outcome.SENT, "send_unconfirmed", result.error)
        self.stages.limiter.release(request)
        if result.circuit_open:  # provider known to be down: wait, without spending an attempt
            until = utcnow() + timedelta(seconds=result.retry_after or 1.0)
            return ChannelDecision(channel, Outcome.DEFERRED, "circuit_open", result.error, until)
        if result.error_class is ErrorClass.TRANSIENT:
            return ChannelDecision(
                channel, Outcome.DEFERRED, "provider_transient", result.error,
                retry_after=result.retry_after,
            )
        return ChannelDecision(channel, Outcome.FAILED, "provider_permanent", result.error)


def _after(settled: ChannelDecision, channel: str) -> ChannelDecision:
    """A later fallback channel once an earlier one settled the event."""
    if settled.outcome is Outcome.DROPPED:  # the limiter's verdict covers the whole event
        return ChannelDecision(channel, Outcome.SKIPPED, settled.reason,
                               f"dropped on {settled.channel}; no fallback")
    if settled.outcome is Outcome.DEFERRED:
        return ChannelDecision(channel, Outcome.SKIPPED, "waiting_for_preferred",
                               f"{settled.channel} is deferred; fallback only if it fails")
    return ChannelDecision(channel, Outcome.SKIPPED, "fallback_not_needed")


def _metadata(etype: EventType, parcel: dict[str, Any], channel: str,
              rendered: RenderedMessage, unsubscribe_url: str | None) -> dict[str, Any]:
    """What adapters may use besides the rendered parts (categories, topic, urgency...)."""
    meta = {"event_type": etype.name, "tracking_number": parcel.get("tracking_number"),
            "category": etype.category, "urgent": etype.urgent,
            "url": (parcel.get("links") or {}).get("track")}
    if rendered.sms is not None:
        meta |= {"sms_segments": rendered.sms.segments, "sms_encoding": str(rendered.sms.encoding)}
    if channel == "email" and unsubscribe_url:  # List-Unsubscribe / RFC 8058 one-click
        meta["unsubscribe_url"] = unsubscribe_url  # the same signed link the message shows
    return meta


def throttle_request(loaded: _Loaded, channel: str) -> ThrottleRequest:
    """The limiter's question for one channel of the job's event, with the customer's
    throttling choices (preferences keys quiet_hours/frequency/digest, or `throttling`)."""
    payload, profile, etype = loaded.payload, loaded.profile, loaded.etype
    parcel = payload.get("parcel") or {}
    deadline = (parcel.get("pickup_point") or {}).get("deadline")
    overrides = loaded.throttling
    return ThrottleRequest(
        customer_id=loaded.recipient.customer_key,  # pseudonymous, per tenant
        channel=channel,
        category=etype.category,
        event_type=etype.name,
        occurred_at=datetime.fromisoformat(payload["occurred_at"]),
        now=utcnow(),
        tracking_number=parcel.get("tracking_number"),
        status_rank=etype.rank,
        urgent=etype.urgent,
        time_zone=profile.time_zone,
        event_ref=str(loaded.event_pk),
        deadline=datetime.fromisoformat(deadline) if deadline else None,
        overrides=overrides,
        summary={"event_id": payload["event_id"], "data": payload.get("data") or {}},
    )


def throttle_overrides(prefs: Preferences, raw: dict[str, Any]) -> dict[str, Any]:
    """The limiter's per-customer overrides from the customer's preferences: their quiet
    hours, the daily digest choice, and any operator-set caps under `throttling`."""
    overrides: dict[str, Any] = {}
    if prefs.quiet_hours is not None:
        overrides["quiet_hours"] = {"enabled": True,
                                    "start": prefs.quiet_hours.start.strftime("%H:%M"),
                                    "end": prefs.quiet_hours.end.strftime("%H:%M")}
    if prefs.frequency is Frequency.DIGEST:
        overrides["digest"] = {"enabled": True}
    overrides.update(raw.get("throttling") or {})
    return overrides


def digest_items(batch: DigestBatch) -> list[dict[str, Any]]:
    """The held items a digest lists, oldest first, as the digest template reads them."""
    return [{"event_type": i.event_type, "category": i.category,
             "occurred_at": i.occurred_at.isoformat(), **i.summary} for i in batch.items]

