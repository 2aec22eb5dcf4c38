"""Several replicas on one database: leases on background work (deployments, evidence jobs),
finished evidence bundles stored in the database, and the heartbeat samples behind fleet health.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 23:45:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_leases",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "id"),
    )
    op.create_table(
        "evidence_blobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["id"], ["evidence_bundles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "heartbeat_samples",
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Float(), nullable=False),
        sa.Column("errors", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "at_ms"),
    )


def downgrade() -> None:
    op.drop_table("heartbeat_samples")
    op.drop_table("evidence_blobs")
    op.drop_table("work_leases")
