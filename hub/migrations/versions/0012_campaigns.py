"""campaigns with variants and a holdout, and their recipients (issue 13)

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, hub.db.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), server_default="default", nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("holdout_percent", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=16), nullable=False),
        _at("start_at", nullable=True),
        sa.Column("local_time", sa.String(length=5), nullable=True),
        sa.Column("send_rate", sa.Integer(), nullable=True),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("audience_size", sa.Integer(), nullable=True),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("materialised", sa.Boolean(), nullable=False),
        _at("released_at", nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        _at("lease_until", nullable=True),
        _at("created_at"),
        _at("updated_at"),
        _at("started_at", nullable=True),
        _at("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_campaigns_tenant", "campaigns", ["tenant", "id"])
    op.create_index("ix_campaigns_due", "campaigns", ["state", "start_at"])
    op.create_table(
        "campaign_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_pk", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _at("send_at"),
        sa.Column("event_pk", sa.Integer(), nullable=True),
        _at("created_at"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["customer_pk"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "customer_pk", name="uq_campaign_recipients_once"),
    )
    op.create_index("ix_campaign_recipients_due", "campaign_recipients",
                    ["campaign_id", "state", "send_at"])
    op.create_index("ix_campaign_recipients_event", "campaign_recipients", ["event_pk"])
    op.create_index("ix_campaign_recipients_customer", "campaign_recipients", ["customer_pk"])


def downgrade() -> None:
    op.drop_index("ix_campaign_recipients_customer", table_name="campaign_recipients")
    op.drop_index("ix_campaign_recipients_event", table_name="campaign_recipients")
    op.drop_index("ix_campaign_recipients_due", table_name="campaign_recipients")
    op.drop_table("campaign_recipients")
    op.drop_index("ix_campaigns_due", table_name="campaigns")
    op.drop_index("ix_campaigns_tenant", table_name="campaigns")
    op.drop_table("campaigns")
