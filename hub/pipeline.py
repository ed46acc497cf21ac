"""The stages of delivery and what the engine asks of them: the limiter's question for a
channel, the envelope and metadata of a rendered message, the decision of a fallback.

The flow itself (load → decide → render → send → record, once per batch) is `hub.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from channels import ChannelAdapter
from channels.ratelimit import ProviderRateLimiter
from hub import activity
from hub.alerts import OpsAlerts
from hub.customers import tombstone_key
from hub.db import Database, utcnow
from hub.delivery import Envelope
from hub.events import EventType
from hub.loading import Loaded, throttle_overrides
from hub.logs import get_logger
from hub.outcomes import ChannelDecision, JobOutcome, Outcome
from hub.settings import get_settings
from templates import RenderedMessage, Renderer
from throttling import DigestBatch, Limiter, ThrottleRequest

__all__ = ["ChannelDecision", "JobOutcome", "Outcome", "Pipeline", "Stages",
           "throttle_overrides", "throttle_request"]
log = get_logger("pipeline")


@dataclass(frozen=True, slots=True)
class Stages:
    """The stage implementations the engine calls (filled by the stage packages)."""

    limiter: Limiter
    renderer: Renderer
    transports: dict[str, ChannelAdapter]


class Pipeline:
    """The stages plus the keys the engine needs (erasure digests, send-record keys)."""

    def __init__(self, db: Database, stages: Stages, erasure_key: str | None = None,
                 record_secret: str | None = None, alerts: OpsAlerts | None = None,
                 rate_limiter: ProviderRateLimiter | None = None) -> None:
        self.db = db
        self.stages = stages
        self.erasure_key = erasure_key or tombstone_key(get_settings())
        # send-record keys are HMACs under this secret (a logged key reveals no address)
        self.record_secret = record_secret or get_settings().secret_key.get_secret_value()
        self.alerts = alerts
        # provider rate limits (messages/s per provider and sender); None = unlimited
        self.rate_limiter = rate_limiter

    def housekeeping(self) -> None:
        """Daily: the limiter forgets counters and parcel statuses nobody touched for weeks;
        customers' parcel windows and RFM recency slide (two days back: runs overlap)."""
        purge = getattr(self.stages.limiter, "purge", None)
        if purge is not None:
            log.info("throttle_purge", rows=purge(utcnow()))
        with self.db.transaction() as session:
            moved = activity.refresh_due(session, since=utcnow() - timedelta(days=2))
        log.info("activity_refresh", customers=moved)

    def alert_dead_letter(self, job_id: int, event_pk: int) -> None:
        """Tells operations a job gave up (best effort)."""
        if self.alerts is not None:
            self.alerts.dead_letter(job_id, event_pk, "see GET /v1/events for the decisions")

    @staticmethod
    def digest_items(batch: DigestBatch) -> list[dict[str, Any]]:
        """The held items a digest lists, oldest first, as the digest template reads them."""
        return [{"event_type": i.event_type, "category": i.category,
                 "occurred_at": i.occurred_at.isoformat(), **i.summary} for i in batch.items]

    @staticmethod
    def envelope(loaded: Loaded, channel: str, address: str, rendered: RenderedMessage,
                 metadata: dict[str, Any]) -> Envelope:
        """What the send record keeps of a rendered message."""
        parcel = loaded.payload.get("parcel") or {}
        return Envelope(loaded.event_pk, loaded.recipient.profile.customer_id,
                        parcel.get("tracking_number"), loaded.etype.name, channel, address,
                        rendered.locale, rendered.parts, metadata, loaded.recipient.tenant)


def after_settled(settled: ChannelDecision, channel: str) -> ChannelDecision:
    """A later fallback channel once an earlier one settled the event."""
    if settled.outcome is Outcome.DROPPED:  # the limiter's verdict covers the whole event
        return ChannelDecision(channel, Outcome.SKIPPED, settled.reason,
                               f"dropped on {settled.channel}; no fallback")
    if settled.outcome is Outcome.DEFERRED:
        return ChannelDecision(channel, Outcome.SKIPPED, "waiting_for_preferred",
                               f"{settled.channel} is deferred; fallback only if it fails")
    return ChannelDecision(channel, Outcome.SKIPPED, "fallback_not_needed")


def message_metadata(etype: EventType, parcel: dict[str, Any], channel: str,
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


def throttle_request(loaded: Loaded, channel: str) -> ThrottleRequest:
    """The limiter's question for one channel of the job's event, with the customer's
    throttling choices (preferences keys quiet_hours/frequency/digest, or `throttling`)."""
    payload, profile, etype = loaded.payload, loaded.recipient.profile, loaded.etype
    parcel = payload.get("parcel") or {}
    deadline = (parcel.get("pickup_point") or {}).get("deadline")
    return ThrottleRequest(
        customer_id=loaded.recipient.customer_key,  # pseudonymous and per tenant
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
        overrides=loaded.throttling,
        summary={"event_id": payload["event_id"], "data": payload.get("data") or {}},
    )
