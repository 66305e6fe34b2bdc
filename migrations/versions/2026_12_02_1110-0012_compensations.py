"""Compensations: step_compensations, a run's compensation status and claim, the compensated
step status.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 11:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from baton.db.schema_ops import columns, has_table, indexes, replace_check, sql_in

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TABLE = "step_compensations"
STATUS_INDEX = "ix_step_compensations_status"
RUNS = "orchestration_runs"
RUNS_INDEX = "ix_orchestration_runs_compensation"
RUN_COLUMNS = [
    # NULL: nothing to compensate; else pending|running|completed|failed.
    sa.Column("compensation", sa.String(length=16), nullable=True),
    # The claim: the segment that runs the compensation, who claimed it, when, why not launched.
    sa.Column("compensation_segment", sa.String(length=64), nullable=True),
    sa.Column("compensation_claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("compensation_claimed_by", sa.String(length=200), nullable=True),
    sa.Column("compensation_error", sa.Text(), nullable=True),
]
STEPS = "orchestration_steps"
STEP_CHECK = "ck_orchestration_steps_status"
OLD_STEP_STATUSES = ("pending", "running", "waiting", "completed", "failed", "skipped", "cancelled")
NEW_STEP_STATUSES = (*OLD_STEP_STATUSES, "compensated")


def _replace_step_check(values: tuple[str, ...]) -> None:
    replace_check(STEPS, STEP_CHECK, "status", values, marker="compensated")


def _create_table() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("call_number", sa.Integer(), nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            sql_in("status", ("pending", "running", "completed", "failed")),
            name=op.f("ck_step_compensations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["orchestration_runs.id"],
            name="fk_step_compensations_run_id_orchestration_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_compensations")),
        sa.UniqueConstraint("run_id", "step_id", name="uq_step_compensations_run_id_step_id"),
    )


def upgrade() -> None:
    # Guarded: a database created from the models already has all of it.
    if not has_table(TABLE):
        _create_table()
    if STATUS_INDEX not in indexes(TABLE):
        op.create_index(STATUS_INDEX, TABLE, ["status"])
    missing = [c for c in RUN_COLUMNS if c.name not in columns(RUNS)]
    if missing:
        with op.batch_alter_table(RUNS, schema=None) as batch_op:
            for column in missing:
                batch_op.add_column(column.copy())
    if RUNS_INDEX not in indexes(RUNS):
        op.create_index(RUNS_INDEX, RUNS, ["compensation"])
    _replace_step_check(NEW_STEP_STATUSES)


def downgrade() -> None:
    # Nothing older knows the status: a compensated step shows as completed (its output kept).
    op.execute(sa.text(f"UPDATE {STEPS} SET status = 'completed' WHERE status = 'compensated'"))
    _replace_step_check(OLD_STEP_STATUSES)
    if RUNS_INDEX in indexes(RUNS):
        op.drop_index(RUNS_INDEX, table_name=RUNS)
    present = [c.name for c in RUN_COLUMNS if c.name in columns(RUNS)]
    if present:
        with op.batch_alter_table(RUNS, schema=None) as batch_op:
            for name in present:
                batch_op.drop_column(name)
    if has_table(TABLE):
        if STATUS_INDEX in indexes(TABLE):
            op.drop_index(STATUS_INDEX, table_name=TABLE)
        op.drop_table(TABLE)
