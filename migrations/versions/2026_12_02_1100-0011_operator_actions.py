"""Operator actions: the audit log of retry, skip and abort; the cancelled step status; a
step's replacement input (an operator's retry with a new input).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from baton.db.schema_ops import columns, has_table, indexes, replace_check, sql_in

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TABLE = "operator_actions"
INDEX = "ix_operator_actions_run_id_created_at"
STEPS = "orchestration_steps"
STEP_CHECK = "ck_orchestration_steps_status"
REPLACEMENT = "input_replacement"
OLD_STEP_STATUSES = ("pending", "running", "waiting", "completed", "failed", "skipped")
NEW_STEP_STATUSES = (*OLD_STEP_STATUSES, "cancelled")


def _replace_step_check(values: tuple[str, ...]) -> None:
    replace_check(STEPS, STEP_CHECK, "status", values, marker="cancelled")


def upgrade() -> None:
    # Guarded: a table created from the models is left as it is.
    if not has_table(TABLE):
        op.create_table(
            TABLE,
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("run_id", sa.Uuid(), nullable=False),
            sa.Column("step_id", sa.String(length=100), nullable=True),
            sa.Column("action", sa.String(length=16), nullable=False),
            sa.Column("by", sa.String(length=200), nullable=False),
            sa.Column("via", sa.String(length=16), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("details", JSON, nullable=False),
            sa.Column("run_status", sa.String(length=32), nullable=True),
            sa.Column("step_status", sa.String(length=32), nullable=True),
            sa.Column("outcome", sa.String(length=16), nullable=False),
            sa.Column("message", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.CheckConstraint(
                sql_in("action", ("abort", "retry", "skip")),
                name=op.f("ck_operator_actions_action"),
            ),
            sa.CheckConstraint(
                sql_in("outcome", ("accepted", "refused")), name=op.f("ck_operator_actions_outcome")
            ),
            sa.ForeignKeyConstraint(
                ["run_id"],
                ["orchestration_runs.id"],
                name="fk_operator_actions_run_id_orchestration_runs",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
        )
    if INDEX not in indexes(TABLE):
        op.create_index(INDEX, TABLE, ["run_id", "created_at"])
    if REPLACEMENT not in columns(STEPS):
        with op.batch_alter_table(STEPS, schema=None) as batch_op:
            batch_op.add_column(sa.Column(REPLACEMENT, JSON, nullable=True))
    _replace_step_check(NEW_STEP_STATUSES)


def downgrade() -> None:
    # Nothing older knows the status: a cancelled step shows as failed.
    op.execute(sa.text(f"UPDATE {STEPS} SET status = 'failed' WHERE status = 'cancelled'"))
    _replace_step_check(OLD_STEP_STATUSES)
    if REPLACEMENT in columns(STEPS):
        with op.batch_alter_table(STEPS, schema=None) as batch_op:
            batch_op.drop_column(REPLACEMENT)
    if has_table(TABLE):
        if INDEX in indexes(TABLE):
            op.drop_index(INDEX, table_name=TABLE)
        op.drop_table(TABLE)
