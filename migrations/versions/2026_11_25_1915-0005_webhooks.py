"""Webhooks: inbound sources and their inbox, outbound subscriptions and deliveries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INBOX_STATUSES = "status IN ('pending', 'processed', 'ignored')"
DELIVERY_STATUSES = "status IN ('pending', 'delivered', 'failed')"


def _missing(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def _now() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    # Guards: tables that already exist (created from the models) are left as they are.
    if _missing("webhook_sources"):
        op.create_table(
            "webhook_sources",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=100), nullable=False),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("secret_encrypted", sa.Text(), nullable=False),
            sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
            sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True),
            _now(),
            sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_sources")),
            sa.UniqueConstraint("name", name=op.f("uq_webhook_sources_name")),
        )
    if _missing("webhook_inbox"):
        op.create_table(
            "webhook_inbox",
            sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
            sa.Column("source", sa.String(length=100), nullable=False),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("webhook_id", sa.String(length=255), nullable=False),
            sa.Column("body", JSON, nullable=False),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column("result", JSON, nullable=True),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
            sa.CheckConstraint(INBOX_STATUSES, name=op.f("ck_webhook_inbox_status")),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
            sa.UniqueConstraint(
                "source", "webhook_id", name=op.f("uq_webhook_inbox_source_webhook_id")
            ),
            sqlite_autoincrement=True,
        )
        op.create_index("ix_webhook_inbox_status_id", "webhook_inbox", ["status", "id"])
    if _missing("webhook_subscriptions"):
        op.create_table(
            "webhook_subscriptions",
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("organization", sa.String(length=100), nullable=False),
            sa.Column("url", sa.Text(), nullable=False),
            sa.Column("secret_encrypted", sa.Text(), nullable=False),
            sa.Column("event_types", JSON, nullable=False),
            sa.Column("last_sequence", sa.BigInteger(), nullable=False),
            _now(),
            sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
        )
        op.create_index(
            "ix_webhook_subscriptions_organization", "webhook_subscriptions", ["organization"]
        )
    if _missing("webhook_deliveries"):
        op.create_table(
            "webhook_deliveries",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("subscription_id", sa.Uuid(), nullable=False),
            sa.Column("event_sequence", sa.BigInteger(), nullable=False),
            sa.Column("event_type", sa.String(length=64), nullable=False),
            sa.Column("webhook_id", sa.String(length=255), nullable=False),
            sa.Column("payload", JSON, nullable=False),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_status_code", sa.Integer(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            _now(),
            sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
            sa.CheckConstraint(DELIVERY_STATUSES, name=op.f("ck_webhook_deliveries_status")),
            sa.ForeignKeyConstraint(
                ["subscription_id"],
                ["webhook_subscriptions.id"],
                name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
            sa.UniqueConstraint(
                "subscription_id",
                "event_sequence",
                name=op.f("uq_webhook_deliveries_subscription_id_event_sequence"),
            ),
        )
        op.create_index(
            "ix_webhook_deliveries_status_next_attempt_at",
            "webhook_deliveries",
            ["status", "next_attempt_at"],
        )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_status_next_attempt_at", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_subscriptions_organization", "webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
    op.drop_index("ix_webhook_inbox_status_id", "webhook_inbox")
    op.drop_table("webhook_inbox")
    op.drop_table("webhook_sources")
