"""Tables of the hub (SQLAlchemy 2). Migrations in hub/migrations mirror this file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hub.db import UtcDateTime, utcnow


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[str]: JSON}


# A tenant is one carrier or brand; single-carrier setups only ever see this one.
DEFAULT_TENANT = "default"


def _tenant() -> Mapped[str]:
    return mapped_column(String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT)


class ApiKey(Base):
    """A (tenant, producer) credential: the secret is stored only as a SHA-256 hash."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant: Mapped[str] = _tenant()
    secret_hash: Mapped[str] = mapped_column(String(64))
    producer: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[str]]
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Customer(Base):
    """A recipient's profile and contact addresses, keyed by (tenant, external id): the
    producers of one tenant share customers, two tenants never do."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant", "external_id", name="uq_customers_tenant_external_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    external_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    phone_verified: Mapped[bool] = mapped_column(default=False)  # preferences (issue 4)
    email_verified: Mapped[bool] = mapped_column(default=False)  # preferences (issue 4)
    locale: Mapped[str] = mapped_column(String(16), default="pl")
    tone: Mapped[str] = mapped_column(String(16), default="formal")
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/Warsaw")
    segment: Mapped[str] = mapped_column(String(16), default="individual")
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The producer's free key/values (loyalty tier, city...; hub.traits validates them).
    traits: Mapped[dict[str, Any] | None] = mapped_column(  # binary JSON on PostgreSQL:
        JSON().with_variant(JSONB(), "postgresql"))  # audience filters read it per row
    # When the contact details last changed: an event's occurred_at for inline details, the
    # request time for an API change. Inline details older than this are never applied, so a
    # retried or late event cannot revert a newer (e.g. verified) phone.
    details_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    """An accepted event; (producer, event_id) is the producer's idempotency key."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("producer", "event_id", name="uq_events_producer_event_id"),
        Index("ix_events_customer", "customer_id"),
        Index("ix_events_parcel", "tracking_number"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    producer: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str] = mapped_column(String(128))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any] | None]
    state: Mapped[str] = mapped_column(String(16), default="accepted")


class OutboxJob(Base):
    """Work for the worker, written in the same transaction as its event."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_ready", "state", "not_before"),
                      Index("ix_outbox_lane_ready", "state", "lane", "not_before"))
    id: Mapped[int] = mapped_column(primary_key=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    lane: Mapped[str] = mapped_column(String(16), default="normal",
                                      server_default="normal")  # hub.lanes.Lane
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Decision(Base):
    """What the pipeline decided for one channel of one event, and why."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_event", "event_pk"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """The send record: written before the provider call, keyed for exactly-once sending."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_customer", "customer_id"),
        Index("ix_notifications_parcel", "tracking_number"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(128))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(512))
    locale: Mapped[str | None] = mapped_column(String(16))
    content: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), default="sending")
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime | None]  # the first open the provider reported (issue 13)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- preferences (issue 4): consent ledger, push subscriptions, erasure tombstones ---


class ConsentRecord(Base):
    """One row of the append-only consent ledger (never updated; deleted only by erasure)."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_customer", "customer_id", "recorded_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    customer_id: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    text_version: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]  # the client's `at`: evidence, never the order (0007)


class PushSubscriptionRow(Base):
    """A browser push subscription of a customer; deactivated (not deleted) on 404/410."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (Index("ix_push_subscriptions_customer", "customer_pk", "active"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(1024), unique=True)
    p256dh: Mapped[str] = mapped_column(String(256))
    auth: Mapped[str] = mapped_column(String(64))
    expiration_time: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)
    deactivated_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Device(Base):
    """A customer's installation of the carrier's app (FCM or APNs token); deactivated, not
    deleted, when the provider says the token is dead."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("tenant", "token", name="uq_devices_tenant_token"),
        Index("ix_devices_customer", "customer_pk", "active"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))  # "android" (FCM) or "ios" (APNs)
    token: Mapped[str] = mapped_column(String(512))
    app_id: Mapped[str] = mapped_column(String(200))  # Android package / iOS bundle id
    app_version: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    deactivated_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InboxItem(Base):
    """A rendered message in the customer's in-app inbox; `idempotency_key` makes the
    inbox channel's send exactly-once like a provider's."""

    __tablename__ = "inbox_items"
    # AUTOINCREMENT on SQLite: an id is never reused after an erasure deleted the newest
    # row, so the live stream (which follows ids upwards) misses nothing.
    __table_args__ = (Index("ix_inbox_items_customer", "customer_pk", "id"),
                      Index("ix_inbox_items_tenant_created", "tenant", "created_at"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    action_url: Mapped[str | None] = mapped_column(String(2048))
    icon: Mapped[str | None] = mapped_column(String(2048))
    parcel: Mapped[str | None] = mapped_column(String(64))  # tracking number
    locale: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]


class CustomerTombstone(Base):
    """What is left of an erased customer: a keyed, non-reversible digest of the external id."""

    __tablename__ = "customer_tombstones"
    __table_args__ = (
        UniqueConstraint("tenant", "digest", name="uq_customer_tombstones_tenant_digest"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    digest: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)

# throttling: the limiter's tables are defined with its SQL backend; registered here so that
# the hub's metadata (Alembic, tests) knows them. Migration: 0003_throttling.
from throttling.backends.sql_tables import metadata as _throttle_metadata  # noqa: E402

for _table in _throttle_metadata.tables.values():
    _table.to_metadata(Base.metadata)


# --- channels (issue 6): address suppressions, inbound consent keywords ---


class ChannelSuppression(Base):
    """An address the hub must not use on a channel (STOP, invalid number, hard bounce).

    Looked up by `address_digest` (keyed hash): erasure clears `address` and `detail` but
    keeps the row, so an erased number that texted STOP is still never texted again."""

    __tablename__ = "channel_suppressions"
    __table_args__ = (
        Index("ix_channel_suppressions_digest", "tenant", "channel", "address_digest"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(512))
    address_digest: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_at: Mapped[datetime | None]


class InboundKeyword(Base):
    """A consent keyword a recipient sent us (SMS STOP/START...), independent of notifications."""

    __tablename__ = "inbound_keywords"
    __table_args__ = (
        Index("ix_inbound_keywords_digest", "tenant", "channel", "address_digest"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(512))  # cleared by erasure
    address_digest: Mapped[str] = mapped_column(String(64))
    keyword: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- consent integrity, test sends, marketer sessions (issue 11; migration 0007) ---


class UsedUndoToken(Base):
    """An unsubscribe-undo token already spent: makes each undo single-use in every process.

    Holds only the token's random id (no customer data); rows older than the token's
    lifetime are useless and may be deleted.
    """

    __tablename__ = "used_undo_tokens"
    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class TemplateTestSend(Base):
    """One `POST /v1/templates/test-send` attempt: who, to whom (masked and keyed hash),
    which template, and what happened. Also the store of its rate limit."""

    __tablename__ = "template_test_sends"
    __table_args__ = (Index("ix_template_test_sends_key", "key_id", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    key_id: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(64))  # masked, for people
    recipient_hash: Mapped[str] = mapped_column(String(64))  # HMAC, to match a known address
    event_type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class TemplateVersion(Base):
    """One saved source of a template (event type × locale, the catalog's file unit) for a
    tenant. Rows are only added; states move draft → published → archived. At most one
    row per (tenant, template) is published (a partial unique index); a rollback adds a
    new row copying an older source (`restored_from`)."""

    __tablename__ = "template_versions"
    __table_args__ = (
        UniqueConstraint("tenant", "template_id", "number", name="uq_template_versions_number"),
        Index("uq_template_versions_published", "tenant", "template_id", unique=True,
              sqlite_where=text("state = 'published'"),
              postgresql_where=text("state = 'published'")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    template_id: Mapped[str] = mapped_column(String(80))
    number: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(String(500))
    restored_from: Mapped[int | None] = mapped_column(Integer)
    published_by: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime | None]
    archived_by: Mapped[str | None] = mapped_column(String(200))
    archived_at: Mapped[datetime | None]


class TemplateGeneration(Base):
    """A counter per tenant, raised by every publish, rollback and unpublish in the same
    transaction: each process compares it once per batch to know its renderer is current."""

    __tablename__ = "template_generations"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)


class SingletonLease(Base):
    """Which process runs a loop that one process at a time suffices for (the outbox relay
    in scale-out mode): the holder renews `until`, another takes over once it passed. An
    economy, never a fence: two holders at once are safe, the work below them is leased."""

    __tablename__ = "singleton_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128))
    until: Mapped[datetime | None]


class UiSession(Base):
    """A marketer's login to the /ui pages: the cookie holds a random token, stored here
    only as its SHA-256; the API key itself never leaves the login request."""

    __tablename__ = "ui_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


# --- follow-up timers (issue 15 item 2; migration 0008) ---


class FollowupTimer(Base):
    """A message the hub will start itself: written in the intake transaction of the event
    that triggered it, fired once (then an ordinary event + outbox job), or cancelled by a
    later event, or skipped with a reason. Names the customer only by `customer_key`."""

    __tablename__ = "followup_timers"
    __table_args__ = (
        UniqueConstraint("rule", "trigger_event_pk", "offset", name="uq_followup_timers_once"),
        Index("ix_followup_timers_due", "state", "fire_at"),
        Index("ix_followup_timers_scope", "tenant", "rule", "scope_value", "state"),
        Index("ix_followup_timers_trigger", "trigger_event_pk"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    rule: Mapped[str] = mapped_column(String(64))
    offset: Mapped[str] = mapped_column(String(16))
    trigger_event_pk: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    trigger_occurred_at: Mapped[datetime]
    scope_value: Mapped[str] = mapped_column(String(128))  # tracking number or customer key
    customer_key: Mapped[str] = mapped_column(String(64))
    match_key: Mapped[str] = mapped_column(String(64))  # hash of replace_when_changed fields
    send_type: Mapped[str] = mapped_column(String(64))
    fire_at: Mapped[datetime]
    anchor_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))  # scheduled|cancelled|fired|skipped|failed
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    resolved_by_event_pk: Mapped[int | None] = mapped_column(Integer)  # the cancelling event
    fired_event_pk: Mapped[int | None] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
# --- delivery feedback and outgoing webhooks (issue 15 items 3-4; migration 0009) ---


class FeedbackResponse(Base):
    """One answer to a delivery feedback request: at most one per request event (single use).

    Names the customer only by `customer_key` (pseudonymous); erasure clears it and the
    comment (free text: personal data) and keeps the score with its pickup point, carrier
    and week for the statistics."""

    __tablename__ = "feedback_responses"
    __table_args__ = (
        UniqueConstraint("event_pk", name="uq_feedback_responses_event"),
        Index("ix_feedback_responses_tenant_at", "tenant", "recorded_at"),
        Index("ix_feedback_responses_customer_key", "customer_key"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    customer_key: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    pickup_point: Mapped[str | None] = mapped_column(String(64))
    carrier: Mapped[str | None] = mapped_column(String(64))
    iso_week: Mapped[str] = mapped_column(String(8))  # "2026-W48": portable grouping
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    commented_at: Mapped[datetime | None]


class WebhookEndpoint(Base):
    """A producer's receiver of notification status changes (Standard Webhooks).

    The signing secret must be kept to sign (it is shown once, at creation)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_owner", "tenant", "producer"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant: Mapped[str] = _tenant()
    producer: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """The durable outbox of outgoing webhook messages and, per endpoint, their log.

    `order_key` (one notification) orders messages: a later one waits until every earlier
    one for the same endpoint and key is settled (succeeded or given up)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_ready", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "endpoint_id", "order_key", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    order_key: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None]


# --- campaigns (issue 13): A/B variants and a holdout over an audience ---


class Campaign(Base):
    """A marketing or loyalty send to an audience: variants with weights, a holdout, a
    schedule and a send rate; `state` follows hub.campaigns.model.CampaignState. The runner
    materialises recipients after `cursor` (the last customer pk assigned) under a lease."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_tenant", "tenant", "id"),
                      Index("ix_campaigns_due", "state", "start_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    name: Mapped[str] = mapped_column(String(200))
    audience_id: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(16))
    channels: Mapped[list[str]]
    variants: Mapped[list[Any]] = mapped_column(JSON)  # [{name, weight, templates}]
    holdout_percent: Mapped[int] = mapped_column(Integer, default=0)
    schedule: Mapped[str] = mapped_column(String(16))  # now | at | local_time
    start_at: Mapped[datetime | None]  # `at`: the instant; set to the start otherwise
    local_time: Mapped[str | None] = mapped_column(String(5))  # "HH:MM" for local_time
    send_rate: Mapped[int | None] = mapped_column(Integer)  # messages/s; None = no cap
    seed: Mapped[str] = mapped_column(String(64))  # the assignment hash's key
    state: Mapped[str] = mapped_column(String(16), default="draft")
    created_by: Mapped[str] = mapped_column(String(32))  # API key id
    audience_size: Mapped[int | None] = mapped_column(Integer)  # counted at the start
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    materialised: Mapped[bool] = mapped_column(default=False)
    released_at: Mapped[datetime | None]  # last release of events (the send-rate clock)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignRecipient(Base):
    """One customer of a campaign, assigned once: its variant (or `holdout`), when its
    message is due, and the event that carries it. Unique per (campaign, customer), so a
    re-run or a restarted runner never assigns or sends anyone twice."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_pk", name="uq_campaign_recipients_once"),
        Index("ix_campaign_recipients_due", "campaign_id", "state", "send_at"),
        Index("ix_campaign_recipients_event", "event_pk"),
        Index("ix_campaign_recipients_customer", "customer_pk"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # assigned|queued|holdout|cancelled
    send_at: Mapped[datetime]
    event_pk: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

# customer data for marketers (issue 13; migration 0011): activity, links, conversions,
# audiences. Imported here so that the hub's metadata (Alembic, tests) knows the tables.
import hub.audience_models  # noqa: E402,F401
