"""Segments: the run's active segment, approval claims with a lease and launch problems.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_COLUMNS = [sa.Column("segment_id", sa.String(length=64), nullable=True)]
APPROVAL_COLUMNS = [
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("claimed_by", sa.String(length=200), nullable=True),
    sa.Column("launch_error", sa.Text(), nullable=True),
    sa.Column("launch_attempts", sa.Integer(), nullable=False, server_default="0"),
]
STATUS_INDEX = "ix_orchestration_runs_status"


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _columns(table: str) -> set[str]:
    return {c["name"] for c in _inspector().get_columns(table)}


def _indexes(table: str) -> set[str]:
    return {i["name"] for i in _inspector().get_indexes(table)}


def upgrade() -> None:
    # Guards: columns and indexes that already exist (created from the models) stay as they are.
    for table, columns in (
        ("orchestration_runs", RUN_COLUMNS),
        ("human_approvals", APPROVAL_COLUMNS),
    ):
        missing = [c for c in columns if c.name not in _columns(table)]
        if missing:
            with op.batch_alter_table(table, schema=None) as batch_op:
                for column in missing:
                    batch_op.add_column(column.copy())
    # Version pinning and the safety-net sensors select unfinished runs by status.
    if STATUS_INDEX not in _indexes("orchestration_runs"):
        op.create_index(STATUS_INDEX, "orchestration_runs", ["status"])


def downgrade() -> None:
    if STATUS_INDEX in _indexes("orchestration_runs"):
        op.drop_index(STATUS_INDEX, table_name="orchestration_runs")
    for table, columns in (
        ("human_approvals", APPROVAL_COLUMNS),
        ("orchestration_runs", RUN_COLUMNS),
    ):
        present = [c.name for c in columns if c.name in _columns(table)]
        if present:
            with op.batch_alter_table(table, schema=None) as batch_op:
                for name in present:
                    batch_op.drop_column(name)
