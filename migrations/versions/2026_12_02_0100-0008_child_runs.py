"""Child runs: a run's place in its parent step, launch claims, the awaiting_children status.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "orchestration_runs"
COLUMNS = [
    # Which child of its parent step a run is (for_each order) and of which attempt.
    sa.Column("parent_step_index", sa.Integer(), nullable=True),
    sa.Column("parent_step_attempt", sa.Integer(), nullable=True),
    # Who claimed the launch of the run's next segment (a child's first one, a parent's
    # resume) and when; why it has not started. The children sensor takes over on a lease.
    sa.Column("launch_claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("launch_claimed_by", sa.String(length=200), nullable=True),
    sa.Column("launch_error", sa.Text(), nullable=True),
]
CHECK = "ck_orchestration_runs_status"
OLD = ("pending", "running", "awaiting_approval", "completed", "failed", "aborted")
NEW = (*OLD, "awaiting_children")
CHILDREN_INDEX = "ix_orchestration_runs_parent_run_id_parent_step_id"


def _condition(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _columns() -> set[str]:
    return {c["name"] for c in _inspector().get_columns(TABLE)}


def _indexes() -> set[str]:
    return {i["name"] for i in _inspector().get_indexes(TABLE)}


def _status_check() -> str | None:
    for check in _inspector().get_check_constraints(TABLE):
        if check["name"] == CHECK:
            return str(check["sqltext"])
    return None


def _replace_check(values: tuple[str, ...]) -> None:
    """Make the status check allow exactly ``values`` (left alone if it already does)."""
    current = _status_check()
    if current is not None and ("awaiting_children" in current) == ("awaiting_children" in values):
        return  # already as wanted (a database created from the models)
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        if current is not None:
            batch_op.drop_constraint(op.f(CHECK), type_="check")
        batch_op.create_check_constraint(op.f(CHECK), _condition(values))


def upgrade() -> None:
    missing = [c for c in COLUMNS if c.name not in _columns()]
    if missing:
        with op.batch_alter_table(TABLE, schema=None) as batch_op:
            for column in missing:
                batch_op.add_column(column.copy())
    _replace_check(NEW)
    if CHILDREN_INDEX not in _indexes():
        op.create_index(CHILDREN_INDEX, TABLE, ["parent_run_id", "parent_step_id"])


def downgrade() -> None:
    # Nothing older knows the status: a run waiting on children shows as running.
    op.execute(sa.text(f"UPDATE {TABLE} SET status = 'running' WHERE status = 'awaiting_children'"))
    _replace_check(OLD)
    if CHILDREN_INDEX in _indexes():
        op.drop_index(CHILDREN_INDEX, table_name=TABLE)
    present = [c.name for c in COLUMNS if c.name in _columns()]
    if present:
        with op.batch_alter_table(TABLE, schema=None) as batch_op:
            for name in present:
                batch_op.drop_column(name)
