"""engine: a priority lane on every outbox job

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
# Follows 0004 on the engine branch only; the tenants branch adds 0005 before it.
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lane", sa.String(length=16), nullable=False,
                                   server_default="normal"))
    op.create_index("ix_outbox_lane_ready", "outbox", ["state", "lane", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_outbox_lane_ready", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lane")
