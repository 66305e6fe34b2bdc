"""Checkpoints: users and their groups, approval votes, approval details, retry overrides.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 05:54:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
FK_PREVIOUS = "fk_human_approvals_previous_approval_id_human_approvals"
# Existing approvals get these values for the new NOT NULL columns.
APPROVAL_COLUMNS = [
    sa.Column("organization", sa.String(100), nullable=False, server_default="global"),
    sa.Column("prompt", sa.Text(), nullable=False, server_default=""),
    sa.Column("show", JSON, nullable=True),
    sa.Column("policy", JSON, nullable=False, server_default="{}"),
    sa.Column("requested_by", sa.String(200), nullable=True),
    sa.Column("diff", JSON, nullable=True),
    sa.Column("escalations", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("previous_approval_id", sa.Uuid(), nullable=True),
    sa.Column("dagster_run_id", sa.String(64), nullable=True),
    sa.Column("resumed_dagster_run_id", sa.String(64), nullable=True),
]


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _columns(table: str) -> set[str]:
    return {c["name"] for c in _inspector().get_columns(table)}


def upgrade() -> None:
    # Guards: tables and columns that already exist are left as they are.
    if not _inspector().has_table("users"):
        op.create_table(
            "users",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("groups", JSON, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
            sa.UniqueConstraint("organization", "name", name=op.f("uq_users_organization_name")),
        )
    if not _inspector().has_table("approval_votes"):
        op.create_table(
            "approval_votes",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("approval_id", sa.Uuid(), nullable=False),
            sa.Column("user_name", sa.String(length=200), nullable=False),
            sa.Column("decision", sa.String(length=32), nullable=False),
            sa.Column("modifications", JSON, nullable=True),
            sa.Column("comment", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["approval_id"],
                ["human_approvals.id"],
                name=op.f("fk_approval_votes_approval_id_human_approvals"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_votes")),
            sa.UniqueConstraint(
                "approval_id", "user_name", name=op.f("uq_approval_votes_approval_id_user_name")
            ),
        )
    existing = _columns("human_approvals")
    with op.batch_alter_table("human_approvals", schema=None) as batch_op:
        for column in APPROVAL_COLUMNS:
            if column.name not in existing:
                batch_op.add_column(column.copy())
        if "previous_approval_id" not in existing:
            batch_op.create_foreign_key(
                FK_PREVIOUS,
                "human_approvals",
                ["previous_approval_id"],
                ["id"],
                ondelete="SET NULL",
            )
    if "input_override" not in _columns("orchestration_steps"):
        with op.batch_alter_table("orchestration_steps", schema=None) as batch_op:
            batch_op.add_column(sa.Column("input_override", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orchestration_steps", schema=None) as batch_op:
        batch_op.drop_column("input_override")
    with op.batch_alter_table("human_approvals", schema=None) as batch_op:
        batch_op.drop_constraint(FK_PREVIOUS, type_="foreignkey")
        for column in reversed(APPROVAL_COLUMNS):
            batch_op.drop_column(column.name)
    op.drop_table("approval_votes")
    op.drop_table("users")
