"""Library files: what the last library sync found in each file (its job, or its errors).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TABLE = "library_files"


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def upgrade() -> None:
    # Guard: a table created from the models already is left as it is.
    if _inspector().has_table(TABLE):
        return
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=True),
        sa.Column("job_name", sa.String(length=200), nullable=True),
        sa.Column("errors", JSON, nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["orchestration_definitions.id"],
            name=op.f("fk_library_files_definition_id_orchestration_definitions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_files")),
        sa.UniqueConstraint("path", name=op.f("uq_library_files_path")),
    )
    op.create_index(op.f("ix_library_files_job_name"), TABLE, ["job_name"])


def downgrade() -> None:
    if not _inspector().has_table(TABLE):
        return
    op.drop_index(op.f("ix_library_files_job_name"), table_name=TABLE)
    op.drop_table(TABLE)
