"""the carrier's app as a channel: devices (FCM/APNs tokens) and inbox_items

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, hub.db.UtcDateTime(timezone=True), nullable=nullable)


def _tenant() -> sa.Column:
    return sa.Column("tenant", sa.String(length=64), server_default="default", nullable=False)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        _tenant(),
        sa.Column("customer_pk", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=512), nullable=False),
        sa.Column("app_id", sa.String(length=200), nullable=False),
        sa.Column("app_version", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("deactivated_reason", sa.String(length=200), nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.ForeignKeyConstraint(["customer_pk"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "token", name="uq_devices_tenant_token"),
    )
    op.create_index("ix_devices_customer", "devices", ["customer_pk", "active"])
    op.create_table(
        "inbox_items",
        sa.Column("id", sa.Integer(), nullable=False),
        _tenant(),
        sa.Column("customer_pk", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("action_url", sa.String(length=2048), nullable=True),
        sa.Column("icon", sa.String(length=2048), nullable=True),
        sa.Column("parcel", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=8), nullable=False),
        _at("created_at"),
        _at("seen_at", nullable=True),
        _at("read_at", nullable=True),
        _at("archived_at", nullable=True),
        sa.ForeignKeyConstraint(["customer_pk"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
        sqlite_autoincrement=True,  # ids never reused: the live stream follows them upwards
    )
    op.create_index("ix_inbox_items_customer", "inbox_items", ["customer_pk", "id"])
    op.create_index("ix_inbox_items_tenant_created", "inbox_items", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_items_tenant_created", table_name="inbox_items")
    op.drop_index("ix_inbox_items_customer", table_name="inbox_items")
    op.drop_table("inbox_items")
    op.drop_index("ix_devices_customer", table_name="devices")
    op.drop_table("devices")
