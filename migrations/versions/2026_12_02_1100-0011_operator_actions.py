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


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _step_columns() -> set[str]:
    return {c["name"] for c in _inspector().get_columns(STEPS)}


def _step_check() -> str | None:
    for check in _inspector().get_check_constraints(STEPS):
        if check["name"] == STEP_CHECK:
            return str(check["sqltext"])
    return None


def _replace_step_check(values: tuple[str, ...]) -> None:
    """Make the step status check allow exactly ``values`` (left alone if it already does)."""
    current = _step_check()
    if current is not None and ("cancelled" in current) == ("cancelled" in values):
        return  # already as wanted (a database created from the models)
    with op.batch_alter_table(STEPS, schema=None) as batch_op:
        if current is not None:
            batch_op.drop_constraint(op.f(STEP_CHECK), type_="check")
        batch_op.create_check_constraint(op.f(STEP_CHECK), _in("status", values))


def upgrade() -> None:
    # Guarded: a table created from the models is left as it is.
    if not _inspector().has_table(TABLE):
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
                _in("action", ("abort", "retry", "skip")), name=op.f("ck_operator_actions_action")
            ),
            sa.CheckConstraint(
                _in("outcome", ("accepted", "refused")), name=op.f("ck_operator_actions_outcome")
            ),
            sa.ForeignKeyConstraint(
                ["run_id"],
                ["orchestration_runs.id"],
                name="fk_operator_actions_run_id_orchestration_runs",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
        )
    if INDEX not in {i["name"] for i in _inspector().get_indexes(TABLE)}:
        op.create_index(INDEX, TABLE, ["run_id", "created_at"])
    if REPLACEMENT not in _step_columns():
        with op.batch_alter_table(STEPS, schema=None) as batch_op:
            batch_op.add_column(sa.Column(REPLACEMENT, JSON, nullable=True))
    _replace_step_check(NEW_STEP_STATUSES)


def downgrade() -> None:
    # Nothing older knows the status: a cancelled step shows as failed.
    op.execute(sa.text(f"UPDATE {STEPS} SET status = 'failed' WHERE status = 'cancelled'"))
    _replace_step_check(OLD_STEP_STATUSES)
    if REPLACEMENT in _step_columns():
        with op.batch_alter_table(STEPS, schema=None) as batch_op:
            batch_op.drop_column(REPLACEMENT)
    if _inspector().has_table(TABLE):
        if INDEX in {i["name"] for i in _inspector().get_indexes(TABLE)}:
            op.drop_index(INDEX, table_name=TABLE)
        op.drop_table(TABLE)
