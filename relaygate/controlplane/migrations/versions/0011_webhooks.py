"""Webhooks: subscriptions per workspace (their signing secrets sealed) and the deliveries, each
enqueued once per subscription and event, with their attempts (the delivery log).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 00:20:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(64), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("description", sa.String(500)),
        sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("deleted_ms", sa.BigInteger),
    )
    op.create_index("ix_webhook_subscriptions_workspace_id", "webhook_subscriptions", ["workspace_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subscription_id", sa.String(40), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("dedupe", sa.String(200), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(100)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("delivered_ms", sa.BigInteger),
        sa.UniqueConstraint("subscription_id", "dedupe", name="webhook_deliveries_once"),
    )
    op.create_index("webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_ms"])
    op.create_index("webhook_deliveries_log", "webhook_deliveries", ["subscription_id", "created_ms"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
