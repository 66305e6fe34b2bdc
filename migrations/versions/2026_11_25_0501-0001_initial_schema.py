"""Initial schema: definitions, runs, steps, approvals and events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 05:01:51.937931
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _missing(table: str) -> bool:
    # Guard: a database whose tables were created another way keeps them untouched.
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _missing("orchestration_definitions"):
        op.create_table(
            "orchestration_definitions",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("slug", sa.String(length=100), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("description", sa.Text(), nullable=True),
            sa.Column(
                "spec", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
            ),
            sa.Column("checksum", sa.String(length=64), nullable=False),
            sa.Column("source_path", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestration_definitions")),
            sa.UniqueConstraint(
                "organization",
                "slug",
                "version",
                name=op.f("uq_orchestration_definitions_organization_slug_version"),
            ),
        )
        with op.batch_alter_table("orchestration_definitions", schema=None) as batch_op:
            batch_op.create_index(
                "ix_orchestration_definitions_org_slug", ["organization", "slug"], unique=False
            )

    if _missing("orchestration_runs"):
        op.create_table(
            "orchestration_runs",
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("definition_id", sa.Integer(), nullable=False),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("orchestration", sa.String(length=100), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column(
                "inputs", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
            ),
            sa.Column(
                "outputs", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            ),
            sa.Column(
                "error", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            ),
            sa.Column("parent_run_id", sa.Uuid(), nullable=True),
            sa.Column("root_run_id", sa.Uuid(), nullable=True),
            sa.Column("parent_step_id", sa.String(length=100), nullable=True),
            sa.Column("created_by", sa.String(length=200), nullable=True),
            sa.Column("last_dagster_run_id", sa.String(length=64), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
            sa.CheckConstraint(
                "status IN ('pending', 'running', 'awaiting_approval', 'completed', 'failed', 'aborted')",  # noqa: E501
                name=op.f("ck_orchestration_runs_status"),
            ),
            sa.ForeignKeyConstraint(
                ["definition_id"],
                ["orchestration_definitions.id"],
                name=op.f("fk_orchestration_runs_definition_id_orchestration_definitions"),
                ondelete="RESTRICT",
            ),
            sa.ForeignKeyConstraint(
                ["parent_run_id"],
                ["orchestration_runs.id"],
                name=op.f("fk_orchestration_runs_parent_run_id_orchestration_runs"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["root_run_id"],
                ["orchestration_runs.id"],
                name=op.f("fk_orchestration_runs_root_run_id_orchestration_runs"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestration_runs")),
        )
        with op.batch_alter_table("orchestration_runs", schema=None) as batch_op:
            batch_op.create_index("ix_orchestration_runs_created_at", ["created_at"], unique=False)
            batch_op.create_index(
                "ix_orchestration_runs_definition_id", ["definition_id"], unique=False
            )
            batch_op.create_index(
                "ix_orchestration_runs_org_status", ["organization", "status"], unique=False
            )
            batch_op.create_index(
                "ix_orchestration_runs_parent_run_id", ["parent_run_id"], unique=False
            )
            batch_op.create_index(
                "ix_orchestration_runs_root_run_id", ["root_run_id"], unique=False
            )

    if _missing("human_approvals"):
        op.create_table(
            "human_approvals",
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("run_id", sa.Uuid(), nullable=False),
            sa.Column("step_id", sa.String(length=100), nullable=False),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column("decision", sa.String(length=32), nullable=True),
            sa.Column(
                "modifications",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
            ),
            sa.Column("comment", sa.Text(), nullable=True),
            sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("decided_by", sa.String(length=200), nullable=True),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
            sa.CheckConstraint(
                "status IN ('pending', 'decided', 'resuming', 'resumed', 'expired', 'cancelled')",
                name=op.f("ck_human_approvals_status"),
            ),
            sa.ForeignKeyConstraint(
                ["run_id"],
                ["orchestration_runs.id"],
                name=op.f("fk_human_approvals_run_id_orchestration_runs"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_human_approvals")),
        )
        with op.batch_alter_table("human_approvals", schema=None) as batch_op:
            batch_op.create_index("ix_human_approvals_expires_at", ["expires_at"], unique=False)
            batch_op.create_index("ix_human_approvals_run_id", ["run_id"], unique=False)
            batch_op.create_index(
                "ix_human_approvals_status_requested_at", ["status", "requested_at"], unique=False
            )

    if _missing("orchestration_events"):
        op.create_table(
            "orchestration_events",
            sa.Column(
                "sequence",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                autoincrement=True,
                nullable=False,
            ),
            sa.Column("run_id", sa.Uuid(), nullable=True),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("type", sa.String(length=64), nullable=False),
            sa.Column(
                "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
            ),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["run_id"],
                ["orchestration_runs.id"],
                name=op.f("fk_orchestration_events_run_id_orchestration_runs"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("sequence", name=op.f("pk_orchestration_events")),
            sqlite_autoincrement=True,
        )
        with op.batch_alter_table("orchestration_events", schema=None) as batch_op:
            batch_op.create_index(
                "ix_orchestration_events_created_at", ["created_at"], unique=False
            )
            batch_op.create_index(
                "ix_orchestration_events_run_id_sequence", ["run_id", "sequence"], unique=False
            )

    if _missing("orchestration_steps"):
        op.create_table(
            "orchestration_steps",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("run_id", sa.Uuid(), nullable=False),
            sa.Column("step_id", sa.String(length=100), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("agent", sa.String(length=100), nullable=True),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False),
            sa.Column(
                "input", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            ),
            sa.Column(
                "output", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            ),
            sa.Column(
                "error", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            ),
            sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.CheckConstraint(
                "status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'skipped')",
                name=op.f("ck_orchestration_steps_status"),
            ),
            sa.ForeignKeyConstraint(
                ["run_id"],
                ["orchestration_runs.id"],
                name=op.f("fk_orchestration_steps_run_id_orchestration_runs"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestration_steps")),
            sa.UniqueConstraint(
                "run_id", "step_id", name=op.f("uq_orchestration_steps_run_id_step_id")
            ),
        )
        with op.batch_alter_table("orchestration_steps", schema=None) as batch_op:
            batch_op.create_index(
                "ix_orchestration_steps_dagster_run_id", ["dagster_run_id"], unique=False
            )
            batch_op.create_index(
                "ix_orchestration_steps_run_id_position", ["run_id", "position"], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("orchestration_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_orchestration_steps_run_id_position")
        batch_op.drop_index("ix_orchestration_steps_dagster_run_id")

    op.drop_table("orchestration_steps")
    with op.batch_alter_table("orchestration_events", schema=None) as batch_op:
        batch_op.drop_index("ix_orchestration_events_run_id_sequence")
        batch_op.drop_index("ix_orchestration_events_created_at")

    op.drop_table("orchestration_events")
    with op.batch_alter_table("human_approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_human_approvals_status_requested_at")
        batch_op.drop_index("ix_human_approvals_run_id")
        batch_op.drop_index("ix_human_approvals_expires_at")

    op.drop_table("human_approvals")
    with op.batch_alter_table("orchestration_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_orchestration_runs_root_run_id")
        batch_op.drop_index("ix_orchestration_runs_parent_run_id")
        batch_op.drop_index("ix_orchestration_runs_org_status")
        batch_op.drop_index("ix_orchestration_runs_definition_id")
        batch_op.drop_index("ix_orchestration_runs_created_at")

    op.drop_table("orchestration_runs")
    with op.batch_alter_table("orchestration_definitions", schema=None) as batch_op:
        batch_op.drop_index("ix_orchestration_definitions_org_slug")

    op.drop_table("orchestration_definitions")
