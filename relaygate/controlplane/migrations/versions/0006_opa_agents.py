"""Stock OPA agents on relaygate's bundles: the last status report of each (OPA's status API),
and the count of their decision log entries (stored as audit events of kind opa.decision).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 17:30:00.000000
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "opa_agents",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("bundles", JSON, nullable=False),
        sa.Column("errors", JSON, nullable=False),
        sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_report_ms", sa.BigInteger(), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("opa_agents")
