"""A step's retry_at: when the reaper retries an orphaned attempt under the step's policy.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 15:30:00
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from baton.db.schema_ops import columns, indexes

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "orchestration_steps"
COLUMN = "retry_at"
INDEX = "ix_orchestration_steps_retry_at"


def upgrade() -> None:
    # Guarded: a database created from the models already has both.
    if COLUMN not in columns(TABLE):
        with op.batch_alter_table(TABLE, schema=None) as batch_op:
            batch_op.add_column(sa.Column(COLUMN, sa.DateTime(timezone=True), nullable=True))
    if INDEX not in indexes(TABLE):
        op.create_index(INDEX, TABLE, [COLUMN])
    _backfill()


def _backfill() -> None:
    """Orphans failed before this revision with a policy retry still to come kept its moment
    on their error only: copy it to the column the reaper now reads."""
    steps = sa.table(
        TABLE,
        sa.column("id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("error", sa.JSON()),
        sa.column(COLUMN, sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(steps.c.id, steps.c.error).where(steps.c.status == "failed"))
    for step_id, error in rows.all():
        due = _due(error)
        if due is not None:
            bind.execute(sa.update(steps).where(steps.c.id == step_id).values({COLUMN: due}))


def _due(error: object) -> datetime | None:
    if not isinstance(error, dict) or error.get("kind") != "orphaned":
        return None
    if not error.get("will_retry") or not error.get("retry_at"):
        return None
    try:
        return datetime.fromisoformat(str(error["retry_at"]))
    except ValueError:
        # A moment no one can read is not worth failing the upgrade over: the reaper's
        # lease check still finds the attempt; only its scheduled retry is lost.
        return None


def downgrade() -> None:
    if INDEX in indexes(TABLE):
        op.drop_index(INDEX, table_name=TABLE)
    if COLUMN in columns(TABLE):
        with op.batch_alter_table(TABLE, schema=None) as batch_op:
            batch_op.drop_column(COLUMN)
