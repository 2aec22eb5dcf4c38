"""Budget ids are unique per workspace, not globally.

A global primary key let one workspace learn, through a 409, that another
workspace had a budget of that name (and kept it from using the name). The
key becomes (workspace_id, id). The table is rebuilt (copy, drop, rename) so
the same steps work on SQLite, which cannot alter a primary key in place.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = 'id, workspace_id, key_id, unit, "window", limit_amount, created_ms, updated_ms, deleted_ms'


def _rebuild(primary_key: list[str], name: str) -> None:
    op.create_table(
        "budgets_next",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("limit_amount", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("deleted_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint(*primary_key, name=name),
    )
    op.execute(f"INSERT INTO budgets_next ({COLUMNS}) SELECT {COLUMNS} FROM budgets")
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budgets_workspace_id"))
    op.drop_table("budgets")
    op.rename_table("budgets_next", "budgets")
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budgets_workspace_id"), ["workspace_id"], unique=False)


def upgrade() -> None:
    _rebuild(["workspace_id", "id"], "budgets_workspace_id_pkey")


def downgrade() -> None:
    # Fails (unique violation) if two workspaces now hold the same budget id: rename one first.
    _rebuild(["id"], "budgets_pkey")
