"""The audit log records an operator's compensate too (operator_actions.action).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from baton.db.schema_ops import replace_check

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "operator_actions"
CHECK = "ck_operator_actions_action"
OLD_ACTIONS = ("abort", "retry", "skip")
NEW_ACTIONS = (*OLD_ACTIONS, "compensate")


def _replace_check(values: tuple[str, ...]) -> None:
    replace_check(TABLE, CHECK, "action", values, marker="compensate")


def upgrade() -> None:
    _replace_check(NEW_ACTIONS)


def downgrade() -> None:
    # Older code has no word for it: its entries go with the revision that introduced them.
    op.execute(sa.text(f"DELETE FROM {TABLE} WHERE action = 'compensate'"))
    _replace_check(OLD_ACTIONS)
