"""Agents (the seeded catalog) and deliverables (what steps produce).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 05:25:50.365276
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _missing(table: str) -> bool:
    # Guard: a database whose tables were created another way keeps them untouched.
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _missing("agents"):
        op.create_table(
            "agents",
            sa.Column("slug", sa.String(length=100), nullable=False),
            sa.Column("type", sa.String(length=32), nullable=False),
            sa.Column("description", sa.Text(), nullable=False),
            sa.Column(
                "config", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
            ),
            sa.Column(
                "env", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
            ),
            sa.Column(
                "limits", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
            ),
            sa.Column("checksum", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("slug", name=op.f("pk_agents")),
        )
    if _missing("deliverables"):
        op.create_table(
            "deliverables",
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("run_id", sa.Uuid(), nullable=False),
            sa.Column("step_id", sa.String(length=100), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("type", sa.String(length=64), nullable=False),
            sa.Column(
                "content", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            ),
            sa.Column("asset_uri", sa.Text(), nullable=True),
            sa.Column("mime_type", sa.String(length=100), nullable=True),
            sa.Column("size_bytes", sa.BigInteger(), nullable=True),
            sa.Column(
                "metadata", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
            ),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False),
            sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["run_id"],
                ["orchestration_runs.id"],
                name=op.f("fk_deliverables_run_id_orchestration_runs"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_deliverables")),
            sa.UniqueConstraint(
                "run_id",
                "step_id",
                "name",
                "version",
                name=op.f("uq_deliverables_run_id_step_id_name_version"),
            ),
        )
        with op.batch_alter_table("deliverables", schema=None) as batch_op:
            batch_op.create_index(
                "ix_deliverables_run_id_step_id", ["run_id", "step_id"], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("deliverables", schema=None) as batch_op:
        batch_op.drop_index("ix_deliverables_run_id_step_id")

    op.drop_table("deliverables")
    op.drop_table("agents")
