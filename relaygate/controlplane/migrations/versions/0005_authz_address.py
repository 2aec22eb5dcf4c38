"""Where each sidecar answers Envoy's ext_authz HTTP check: the control plane renders its gateway's
listener for that transport (the faster one, docs/performance.md) when the sidecar registered one,
and for ext_proc when not.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 11:30:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("authz_address", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("authz_address")
