"""The audit feed filtered by who made a change (GET /v1/audit/events?actor=…): an index on the
actor, newest first within it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 00:10:00.000000
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("audit_events_actor_seq", "audit_events", ["actor", "seq"])


def downgrade() -> None:
    op.drop_index("audit_events_actor_seq", table_name="audit_events")
