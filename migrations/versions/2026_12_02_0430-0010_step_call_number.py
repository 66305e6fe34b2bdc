"""Step call numbers: the idempotency key's counter, moved on only by a deliberate retry.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from baton.db.schema_ops import columns

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "orchestration_steps"
COLUMN = "call_number"


def upgrade() -> None:
    # Guarded: a database created from the models already has it.
    if COLUMN in columns(TABLE):
        return
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column(COLUMN, sa.Integer(), nullable=False, server_default="0"))
    # Steps started before this revision: their attempt is the best guess of their call, so a
    # re-execution of one presents the key its last attempt was called with.
    op.execute(sa.text(f"UPDATE {TABLE} SET {COLUMN} = attempt"))


def downgrade() -> None:
    if COLUMN in columns(TABLE):
        with op.batch_alter_table(TABLE, schema=None) as batch_op:
            batch_op.drop_column(COLUMN)
