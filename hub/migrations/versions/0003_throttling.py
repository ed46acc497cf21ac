"""throttling: counters, parcel ledger, digest items

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "throttle_hits",
        sa.Column("scope_key", sa.String(length=200), nullable=False),
        sa.Column("member", sa.String(length=200), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope_key", "member"),
    )
    with op.batch_alter_table("throttle_hits") as batch:
        batch.create_index("ix_throttle_hits_window", ["scope_key", "at_ms"])
    op.create_table(
        "throttle_parcels",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("max_rank", sa.Integer(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "tracking_number"),
    )
    op.create_table(
        "throttle_marks",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "tracking_number", "status", "channel"),
    )
    op.create_table(
        "throttle_digest",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("item_ref", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("occurred_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("ready_ms", sa.BigInteger(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("batch", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_ref"),
    )
    with op.batch_alter_table("throttle_digest") as batch:
        batch.create_index("ix_throttle_digest_due", ["customer_id", "batch", "due_ms"])


def downgrade() -> None:
    op.drop_table("throttle_digest")
    op.drop_table("throttle_marks")
    op.drop_table("throttle_parcels")
    op.drop_table("throttle_hits")
