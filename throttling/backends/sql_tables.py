"""The throttling tables (SQLAlchemy Core). hub/models.py adds them to the hub's metadata and
hub/migrations/versions/0003_throttling.py creates them."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table

metadata = MetaData()

# One row per message counted against a cap: (counter, slot owner) at a millisecond.
throttle_hits = Table(
    "throttle_hits",
    metadata,
    Column("scope_key", String(200), primary_key=True),
    Column("member", String(200), primary_key=True),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_throttle_hits_window", "scope_key", "at_ms"),
)

# The highest status rank seen per parcel and customer (older statuses are stale).
throttle_parcels = Table(
    "throttle_parcels",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("tracking_number", String(64), primary_key=True),
    Column("max_rank", Integer, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

# One status on one channel: held (deferred, may be superseded) or sent (dedupe).
throttle_marks = Table(
    "throttle_marks",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("tracking_number", String(64), primary_key=True),
    Column("status", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("state", String(8), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

# Loyalty/marketing messages held for a customer's daily digest.
throttle_digest = Table(
    "throttle_digest",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("item_ref", String(200), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("category", String(16), nullable=False),
    Column("occurred_ms", BigInteger, nullable=False),
    Column("due_ms", BigInteger, nullable=False),
    Column("ready_ms", BigInteger, nullable=True),
    Column("summary", JSON, nullable=False),
    Column("batch", String(200), nullable=True),
    Index("ix_throttle_digest_due", "customer_id", "batch", "due_ms"),
)
