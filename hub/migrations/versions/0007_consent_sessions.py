"""consent integrity, test sends, marketer sessions: consents.claimed_at, used_undo_tokens,
template_test_sends, ui_sessions

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch_op:
        batch_op.add_column(sa.Column("claimed_at", hub.db.UtcDateTime(timezone=True),
                                      nullable=True))
    # Until now recorded_at held the client's `at` when one was given: keep it as evidence.
    op.execute("UPDATE consents SET claimed_at = recorded_at")
    op.create_table(
        "used_undo_tokens",
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("used_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_id"),
    )
    op.create_index("ix_used_undo_tokens_used_at", "used_undo_tokens", ["used_at"])
    op.create_table(
        "template_test_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("recipient_hash", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_template_test_sends_key", "template_test_sends", ["key_id", "at"])
    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hub.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", hub.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_ui_sessions_key_id", "ui_sessions", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_ui_sessions_key_id", table_name="ui_sessions")
    op.drop_table("ui_sessions")
    op.drop_index("ix_template_test_sends_key", table_name="template_test_sends")
    op.drop_table("template_test_sends")
    op.drop_index("ix_used_undo_tokens_used_at", table_name="used_undo_tokens")
    op.drop_table("used_undo_tokens")
    with op.batch_alter_table("consents") as batch_op:
        batch_op.drop_column("claimed_at")
