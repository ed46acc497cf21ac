"""template drafts and versions published from the page, and the per-tenant generation

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, hub.db.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), server_default="default", nullable=False),
        sa.Column("template_id", sa.String(length=80), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        _at("created_at"),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.Column("published_by", sa.String(length=200), nullable=True),
        _at("published_at", nullable=True),
        sa.Column("archived_by", sa.String(length=200), nullable=True),
        _at("archived_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "template_id", "number",
                            name="uq_template_versions_number"),
    )
    op.create_index("uq_template_versions_published", "template_versions",
                    ["tenant", "template_id"], unique=True,
                    sqlite_where=sa.text("state = 'published'"),
                    postgresql_where=sa.text("state = 'published'"))
    op.create_table(
        "template_generations",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )


def downgrade() -> None:
    op.drop_table("template_generations")
    op.drop_index("uq_template_versions_published", table_name="template_versions")
    op.drop_table("template_versions")
