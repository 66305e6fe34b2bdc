"""What Baton's Alembic revisions ask of the live schema, guarded so a revision may run on a
database that already has what it adds (one created from the models, or half-migrated).

Call these inside a revision's ``upgrade``/``downgrade`` only: they use Alembic's ``op``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """``column IN ('a', 'b')``: the text of a check constraint over fixed values."""
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def has_table(table: str) -> bool:
    return _inspector().has_table(table)


def columns(table: str) -> set[str]:
    """The names of ``table``'s columns."""
    return {c["name"] for c in _inspector().get_columns(table)}


def indexes(table: str) -> set[str]:
    """The names of ``table``'s indexes."""
    return {str(i["name"]) for i in _inspector().get_indexes(table)}


def check_text(table: str, name: str) -> str | None:
    """The SQL of ``table``'s check constraint ``name``, or None if it has none."""
    for check in _inspector().get_check_constraints(table):
        if check["name"] == name:
            return str(check["sqltext"])
    return None


def replace_check(
    table: str, name: str, column: str, values: tuple[str, ...], *, marker: str
) -> None:
    """Make check ``name`` allow exactly ``column IN values``. ``marker`` is the value the
    revision adds: when the current check already has it exactly as ``values`` does, the check
    is left alone (a database created from the models)."""
    current = check_text(table, name)
    if current is not None and (f"'{marker}'" in current) == (marker in values):
        return
    with op.batch_alter_table(table, schema=None) as batch_op:
        if current is not None:
            batch_op.drop_constraint(op.f(name), type_="check")
        batch_op.create_check_constraint(op.f(name), sql_in(column, values))
