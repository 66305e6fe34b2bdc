"""Step caching: the step_cache table and a step's cache column ('hit' or 'miss').

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from baton.db.schema_ops import columns, has_table, indexes

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TABLE = "step_cache"
INDEXES = {
    "ix_step_cache_expires_at": ["expires_at"],
    "ix_step_cache_orchestration_step_id": ["orchestration", "step_id"],
}
STEPS = "orchestration_steps"
COLUMN = "cache"


def _create_table() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization", sa.String(length=100), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("orchestration", sa.String(length=100), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_cache")),
        sa.UniqueConstraint(
            "organization", "agent", "agent_version", "input_hash", name="uq_step_cache_key"
        ),
    )


def upgrade() -> None:
    # Guarded: a database created from the models already has all of it.
    if not has_table(TABLE):
        _create_table()
    present = indexes(TABLE)
    for name, cols in INDEXES.items():
        if name not in present:
            op.create_index(name, TABLE, cols)
    if COLUMN not in columns(STEPS):
        with op.batch_alter_table(STEPS, schema=None) as batch_op:
            batch_op.add_column(sa.Column(COLUMN, sa.String(length=8), nullable=True))


def downgrade() -> None:
    if COLUMN in columns(STEPS):
        with op.batch_alter_table(STEPS, schema=None) as batch_op:
            batch_op.drop_column(COLUMN)
    if has_table(TABLE):
        present = indexes(TABLE)
        for name in INDEXES:
            if name in present:
                op.drop_index(name, table_name=TABLE)
        op.drop_table(TABLE)
