"""The Merkle log across replicas: C2SP tiles stored in the database, the writer's lease and
tree size, and the queue of events a non-writer replica stored for the writer to log.

The tiles of an existing log are built by the first writer at start (from merkle_leaves, in
chunks, with progress logged): the size row starts at 0 and the writer catches up.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 23:40:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merkle_tiles",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    writer = op.create_table(
        "merkle_writer",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("replica_id", sa.String(length=200), nullable=True),
        sa.Column("backend_pid", sa.Integer(), nullable=True),
        sa.Column("renewed_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(writer, [{"id": 1, "size": 0, "term": 0, "renewed_ms": 0, "expires_ms": 0}])
    op.create_table(
        "merkle_queue",
        sa.Column("event_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["event_seq"], ["audit_events.seq"]),
        sa.PrimaryKeyConstraint("event_seq"),
    )


def downgrade() -> None:
    op.drop_table("merkle_queue")
    op.drop_table("merkle_writer")
    op.drop_table("merkle_tiles")
