"""The audit log records an operator's compensate too (operator_actions.action).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "operator_actions"
CHECK = "ck_operator_actions_action"
OLD_ACTIONS = ("abort", "retry", "skip")
NEW_ACTIONS = (*OLD_ACTIONS, "compensate")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _check() -> str | None:
    for check in sa.inspect(op.get_bind()).get_check_constraints(TABLE):
        if check["name"] == CHECK:
            return str(check["sqltext"])
    return None


def _replace_check(values: tuple[str, ...]) -> None:
    """Make the action check allow exactly ``values`` (left alone if it already does)."""
    current = _check()
    if current is not None and ("compensate" in current) == ("compensate" in values):
        return  # already as wanted (a database created from the models)
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        if current is not None:
            batch_op.drop_constraint(op.f(CHECK), type_="check")
        batch_op.create_check_constraint(op.f(CHECK), _in("action", values))


def upgrade() -> None:
    _replace_check(NEW_ACTIONS)


def downgrade() -> None:
    # Older code has no word for it: its entries go with the revision that introduced them.
    op.execute(sa.text(f"DELETE FROM {TABLE} WHERE action = 'compensate'"))
    _replace_check(OLD_ACTIONS)
