"""follow-up timers: followup_timers

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, hub.db.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "followup_timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), server_default="default", nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.String(length=16), nullable=False),
        sa.Column("trigger_event_pk", sa.Integer(), nullable=False),
        _at("trigger_occurred_at"),
        sa.Column("scope_value", sa.String(length=128), nullable=False),
        sa.Column("customer_key", sa.String(length=64), nullable=False),
        sa.Column("match_key", sa.String(length=64), nullable=False),
        sa.Column("send_type", sa.String(length=64), nullable=False),
        _at("fire_at"),
        _at("anchor_at", nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("resolved_by_event_pk", sa.Integer(), nullable=True),
        sa.Column("fired_event_pk", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        _at("lease_until", nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.ForeignKeyConstraint(["trigger_event_pk"], ["events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule", "trigger_event_pk", "offset",
                            name="uq_followup_timers_once"),
    )
    op.create_index("ix_followup_timers_due", "followup_timers", ["state", "fire_at"])
    op.create_index("ix_followup_timers_scope", "followup_timers",
                    ["tenant", "rule", "scope_value", "state"])
    op.create_index("ix_followup_timers_trigger", "followup_timers", ["trigger_event_pk"])


def downgrade() -> None:
    op.drop_table("followup_timers")
