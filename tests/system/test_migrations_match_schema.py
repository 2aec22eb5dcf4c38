"""The Alembic migrations build exactly the tables `relaygate.controlplane.schema` declares.

Tables are declared twice: `relaygate/controlplane/schema.py` (what every query is written against) and
`relaygate/controlplane/migrations/` (what a deployment's database actually holds). A column, index or
unique constraint added to one and not the other works on a test database made one way and
fails on a customer's database made the other. These tests migrate an empty database with the
control plane's own runner (`controlplane.db.migrate`, what `relaygate-controlplane` runs on
start) on SQLite and on PostgreSQL, then ask Alembic's autogenerate comparison for every
difference from `schema.metadata`; primary keys, which autogenerate does not compare, are
compared here.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from relaygate.controlplane import db
from relaygate.controlplane.schema import metadata


def _diffs(sync_conn, target: sa.MetaData) -> list:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True, "compare_server_default": False})
    out = []
    for diff in compare_metadata(context, target):
        if isinstance(diff, tuple) and diff and diff[0] == "remove_table" and diff[1].name == "alembic_version":
            continue
        out.append(diff)
    return out


def _primary_keys(sync_conn, target: sa.MetaData) -> list[tuple[str, list[str], list[str]]]:
    """(table, migrated key columns, declared key columns) for every table whose key differs, in order."""
    insp = sa.inspect(sync_conn)
    out = []
    for table in target.sorted_tables:
        got = insp.get_pk_constraint(table.name)["constrained_columns"]
        want = [c.name for c in table.primary_key.columns]
        if got != want:
            out.append((table.name, got, want))
    return out


def _migrated_vs(url: str, target: sa.MetaData) -> tuple[list, list, str]:
    async def run():
        engine = db.create_engine(url)
        try:
            await db.migrate(engine)
            async with engine.connect() as conn:
                diffs = await conn.run_sync(_diffs, target)
                pks = await conn.run_sync(_primary_keys, target)
            return diffs, pks, engine.dialect.name
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migrations_build_the_declared_schema(database_url):
    diffs, pks, dialect = _migrated_vs(database_url, metadata)
    assert dialect in ("sqlite", "postgresql")
    assert diffs == [], f"migrations and relaygate/controlplane/schema.py disagree on {dialect}: {diffs}"
    assert pks == [], f"primary keys differ on {dialect} (table, migrated, declared): {pks}"


def test_a_column_without_a_migration_is_caught(database_url):
    """The comparison is not blind: a column, index and unique constraint declared only in the
    schema (as a change to schema.py without a migration would be) are each reported."""
    extra = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(extra)
    workspaces = extra.tables["workspaces"]
    workspaces.append_column(sa.Column("undeclared_in_migrations", sa.String(10)))
    sa.Index("ix_workspaces_undeclared", workspaces.c.updated_ms)
    sa.UniqueConstraint(extra.tables["agents"].c.endpoint, name="uq_agents_endpoint")
    diffs, pks, _ = _migrated_vs(database_url, extra)
    kinds = {(d[0], getattr(d[-1], "name", None)) for d in diffs if isinstance(d, tuple)}
    assert ("add_column", "undeclared_in_migrations") in kinds, diffs
    assert ("add_index", "ix_workspaces_undeclared") in kinds, diffs
    assert ("add_constraint", "uq_agents_endpoint") in kinds, diffs
