"""customer data for marketers: traits, parcels and activity, tracked links and clicks,
conversions, audiences, e-mail opens, and the consent state as bits for audience counts

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, hub.db.UtcDateTime(timezone=True), nullable=nullable)


def _tenant() -> sa.Column:
    return sa.Column("tenant", sa.String(length=64), server_default="default", nullable=False)


def _customer(nullable: bool = False) -> list[sa.Column | sa.ForeignKeyConstraint]:
    return [sa.Column("customer_pk", sa.Integer(), nullable=nullable),
            sa.ForeignKeyConstraint(["customer_pk"], ["customers.id"], ondelete="CASCADE")]


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), server_default="0", nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column(
            "traits", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(_at("opened_at", nullable=True))
    op.create_table(
        "customer_parcels",
        *_customer(),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        _tenant(),
        _at("first_seen_at"),
        sa.Column("delivery_method", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("customer_pk", "tracking_number"),
    )
    op.create_index("ix_customer_parcels_seen", "customer_parcels", ["first_seen_at"])
    op.create_table(
        "customer_activity",
        *_customer(),
        _tenant(),
        _at("last_parcel_at", nullable=True),
        _count("parcels_30d"),
        _count("parcels_90d"),
        _count("parcels_365d"),
        sa.Column("last_delivery_method", sa.String(length=16), nullable=True),
        _at("last_click_at", nullable=True),
        _at("last_conversion_at", nullable=True),
        _count("conversions_count"),
        sa.Column("conversions_value", sa.Numeric(18, 2), server_default="0", nullable=False),
        sa.Column("rfm_recency", sa.Integer(), server_default="1", nullable=False),
        sa.Column("rfm_frequency", sa.Integer(), server_default="1", nullable=False),
        sa.Column("rfm_monetary", sa.Integer(), server_default="1", nullable=False),
        sa.Column("rfm", sa.String(length=3), server_default="111", nullable=False),
        _count("consent_mask"),
        _at("counted_at", nullable=True),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("customer_pk"),
    )
    _backfill_consent_masks()
    op.create_index("ix_customer_activity_last_parcel", "customer_activity",
                    ["last_parcel_at"])
    op.create_table(
        "tracked_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=16), nullable=False),
        _tenant(),
        *_customer(),
        sa.Column("event_pk", sa.Integer(), nullable=True),
        sa.Column("send_key", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        _at("created_at"),
        sa.ForeignKeyConstraint(["event_pk"], ["events.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token"),
    )
    op.create_index("ix_tracked_links_customer", "tracked_links", ["customer_pk"])
    op.create_index("ix_tracked_links_campaign", "tracked_links",
                    ["tenant", "campaign_id", "variant"])
    op.create_table(
        "link_clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        _tenant(),
        sa.Column("link_id", sa.Integer(), nullable=False),
        *_customer(),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        _at("clicked_at"),
        sa.ForeignKeyConstraint(["link_id"], ["tracked_links.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_link_clicks_customer", "link_clicks", ["customer_pk", "clicked_at"])
    op.create_index("ix_link_clicks_link", "link_clicks", ["link_id", "clicked_at"])
    op.create_index("ix_link_clicks_campaign", "link_clicks",
                    ["tenant", "campaign_id", "variant"])
    op.create_table(
        "conversions",
        sa.Column("id", sa.Integer(), nullable=False),
        _tenant(),
        *_customer(),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        _at("occurred_at"),
        _at("recorded_at"),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("click_id", sa.Integer(), nullable=True),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["click_id"], ["link_clicks.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "external_id", name="uq_conversions_tenant_external_id"),
    )
    op.create_index("ix_conversions_customer", "conversions", ["customer_pk", "occurred_at"])
    op.create_index("ix_conversions_campaign", "conversions",
                    ["tenant", "campaign_id", "variant"])
    op.create_table(
        "audiences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        _tenant(),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_index("ix_audiences_tenant", "audiences", ["tenant", "id"])


def _backfill_consent_masks() -> None:
    """Every existing customer with a ledger gets its current consent state as bits (the
    latest row per purpose and channel wins, in the order the hub recorded them)."""
    # hub.activity.consent_bit as of this revision (a migration keeps its own copy)
    channels = ("sms", "email", "push", "app_push", "inbox")
    bits = {(p, c): 1 << (i * 16 + j) for i, p in enumerate(("marketing", "loyalty"))
            for j, c in enumerate(channels)}
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT c.id, c.tenant, l.purpose, l.channel, l.action FROM consents l "
        "JOIN customers c ON c.tenant = l.tenant AND c.external_id = l.customer_id "
        "ORDER BY c.id, l.id"))
    latest: dict[tuple[int, str], dict[tuple[str, str], str]] = {}
    for pk, tenant, purpose, channel, action in rows:
        latest.setdefault((pk, tenant), {})[(purpose, channel)] = action
    if latest:
        conn.execute(sa.text(
            "INSERT INTO customer_activity (customer_pk, tenant, consent_mask, updated_at) "
            "VALUES (:pk, :tenant, :mask, CURRENT_TIMESTAMP)"),
            [{"pk": pk, "tenant": tenant,
              "mask": sum(bits.get(k, 0) for k, action in state.items() if action == "granted")}
             for (pk, tenant), state in latest.items()])


def downgrade() -> None:
    op.drop_index("ix_audiences_tenant", table_name="audiences")
    op.drop_table("audiences")
    for index in ("ix_conversions_campaign", "ix_conversions_customer"):
        op.drop_index(index, table_name="conversions")
    op.drop_table("conversions")
    for index in ("ix_link_clicks_campaign", "ix_link_clicks_link", "ix_link_clicks_customer"):
        op.drop_index(index, table_name="link_clicks")
    op.drop_table("link_clicks")
    op.drop_index("ix_tracked_links_campaign", table_name="tracked_links")
    op.drop_index("ix_tracked_links_customer", table_name="tracked_links")
    op.drop_table("tracked_links")
    op.drop_index("ix_customer_activity_last_parcel", table_name="customer_activity")
    op.drop_table("customer_activity")
    op.drop_index("ix_customer_parcels_seen", table_name="customer_parcels")
    op.drop_table("customer_parcels")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("opened_at")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("traits")
