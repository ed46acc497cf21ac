"""Tables of customer data for marketers (issue 13; migration 0011): what the hub learns
from its own event stream (parcels, activity), tracked links and their clicks, conversions,
and saved audiences. Registered on the hub's metadata by `hub.models`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import utcnow
from hub.models import DEFAULT_TENANT, Base

# Conversion values: up to 12 digits before the point, 2 after (no currency needs more).
VALUE_PRECISION, VALUE_SCALE = 14, 2


def _tenant() -> Mapped[str]:
    return mapped_column(String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT)


def _customer_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))


class CustomerParcel(Base):
    """A parcel the hub saw for a customer (one row per customer × tracking number), written
    when the event's job is loaded; the activity counters are counted from these rows."""

    __tablename__ = "customer_parcels"
    __table_args__ = (
        PrimaryKeyConstraint("customer_pk", "tracking_number"),
        Index("ix_customer_parcels_seen", "first_seen_at"),  # the daily refresh, all tenants
    )
    customer_pk: Mapped[int] = _customer_fk()
    tracking_number: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = _tenant()
    first_seen_at: Mapped[datetime]  # the first event's occurred_at (capped at intake time)
    delivery_method: Mapped[str | None] = mapped_column(String(16))  # pickup_point | courier


class CustomerActivity(Base):
    """What the hub computed about one customer: parcels, clicks, conversions and the RFM
    score (definition in docs/architecture.md). One row per customer, kept by
    `hub.activity`; audiences filter on these columns without touching the event stream."""

    __tablename__ = "customer_activity"
    # only the daily refresh's range scan (all tenants): counters are read by whole-table
    # scans, and indexing them would make every recount a non-HOT update
    __table_args__ = (Index("ix_customer_activity_last_parcel", "last_parcel_at"),)
    customer_pk: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tenant: Mapped[str] = _tenant()
    last_parcel_at: Mapped[datetime | None]
    parcels_30d: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    parcels_90d: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    parcels_365d: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_delivery_method: Mapped[str | None] = mapped_column(String(16))
    last_click_at: Mapped[datetime | None]
    last_conversion_at: Mapped[datetime | None]
    conversions_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    conversions_value: Mapped[Decimal] = mapped_column(
        Numeric(VALUE_PRECISION + 4, VALUE_SCALE), default=Decimal(0), server_default="0")
    rfm_recency: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rfm_frequency: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rfm_monetary: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rfm: Mapped[str] = mapped_column(String(3), default="111", server_default="111")
    # The consent ledger's current state as bits (hub.activity.consent_bit): rewritten from
    # the whole ledger (preferences.derive_state) whenever a row is appended to it.
    consent_mask: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    counted_at: Mapped[datetime | None]  # when the parcel counters were last recounted
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrackedLink(Base):
    """A link of a campaign or loyalty message, reached through `/c/<token>`. The token is
    derived from the send record's key and the URL, so a retried send finds its rows."""

    __tablename__ = "tracked_links"
    __table_args__ = (
        Index("ix_tracked_links_customer", "customer_pk"),
        Index("ix_tracked_links_campaign", "tenant", "campaign_id", "variant"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(16), unique=True)  # the id part of /c/<token>
    tenant: Mapped[str] = _tenant()
    customer_pk: Mapped[int] = _customer_fk()
    event_pk: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    send_key: Mapped[str | None] = mapped_column(String(200))  # the send record's key
    channel: Mapped[str | None] = mapped_column(String(32))
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkClick(Base):
    """A counted click on a tracked link (bots and repeats within a short window excluded)."""

    __tablename__ = "link_clicks"
    __table_args__ = (
        Index("ix_link_clicks_customer", "customer_pk", "clicked_at"),
        Index("ix_link_clicks_link", "link_id", "clicked_at"),
        Index("ix_link_clicks_campaign", "tenant", "campaign_id", "variant"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    link_id: Mapped[int] = mapped_column(ForeignKey("tracked_links.id", ondelete="CASCADE"))
    customer_pk: Mapped[int] = _customer_fk()
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(64))
    clicked_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversion(Base):
    """A conversion the producer reported (`POST /v1/conversions`), attributed to the
    customer's last click within the window; `external_id` makes retries idempotent."""

    __tablename__ = "conversions"
    __table_args__ = (
        UniqueConstraint("tenant", "external_id", name="uq_conversions_tenant_external_id"),
        Index("ix_conversions_customer", "customer_pk", "occurred_at"),
        Index("ix_conversions_campaign", "tenant", "campaign_id", "variant"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = _tenant()
    customer_pk: Mapped[int] = _customer_fk()
    external_id: Mapped[str] = mapped_column(String(128))
    value: Mapped[Decimal] = mapped_column(Numeric(VALUE_PRECISION, VALUE_SCALE))
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(64))
    click_id: Mapped[int | None] = mapped_column(ForeignKey("link_clicks.id",
                                                            ondelete="SET NULL"))
    body_hash: Mapped[str] = mapped_column(String(64))  # same external_id, other body: 409


class Audience(Base):
    """A saved filter over customers (`hub.audiences`); `public_id` is what the API shows."""

    __tablename__ = "audiences"
    __table_args__ = (Index("ix_audiences_tenant", "tenant", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant: Mapped[str] = _tenant()
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(16), default="marketing")  # for reachability
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128))  # the producer of the API key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
