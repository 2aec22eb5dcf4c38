"""Control-plane rate limits shared by several replicas on PostgreSQL (no Redis): a token bucket
per key, charged in one statement on the database's clock.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 23:50:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cp_rate_buckets",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("level", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("cp_rate_buckets")
