"""Step leases: when a running attempt's owner (its Dagster run) last showed it was alive.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from baton.db.schema_ops import columns, indexes

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "orchestration_steps"
COLUMN = "heartbeat_at"
# The reaper reads the running steps on every tick: an index keeps that cheap.
STATUS_INDEX = "ix_orchestration_steps_status"


def upgrade() -> None:
    # Guarded: a database created from the models already has both.
    if COLUMN not in columns(TABLE):
        with op.batch_alter_table(TABLE, schema=None) as batch_op:
            batch_op.add_column(sa.Column(COLUMN, sa.DateTime(timezone=True), nullable=True))
    if STATUS_INDEX not in indexes(TABLE):
        op.create_index(STATUS_INDEX, TABLE, ["status"])


def downgrade() -> None:
    if STATUS_INDEX in indexes(TABLE):
        op.drop_index(STATUS_INDEX, table_name=TABLE)
    if COLUMN in columns(TABLE):
        with op.batch_alter_table(TABLE, schema=None) as batch_op:
            batch_op.drop_column(COLUMN)
