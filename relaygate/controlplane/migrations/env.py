"""Alembic environment: runs on the connection controlplane.db hands over (or a URL for the CLI)."""

from alembic import context

from relaygate.controlplane.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` command line: sqlalchemy.url set in the config
    from sqlalchemy import create_engine

    connection = create_engine(config.get_main_option("sqlalchemy.url")).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
