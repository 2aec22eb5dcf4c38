"""Database engine and migrations: SQLite by default, PostgreSQL by URL.

``sqlite:///path`` and ``postgresql://user:pass@host/db`` are accepted as given
and mapped to their async drivers (aiosqlite, asyncpg). Migrations (Alembic,
relaygate/controlplane/migrations) run on start, before the API serves a request.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relaygate.contract.private_files import private_sqlite

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger("relaygate.controlplane.db")
STARTUP_LOCK = 0x72656C6179  # "relay": the advisory-lock key replicas take turns on while starting


def async_url(url: str) -> str:
    """Map a plain database URL to its async driver."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    if url.startswith(("postgresql:", "postgres:")):
        return "postgresql+asyncpg:" + url.split(":", 1)[1]
    return url


def create_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            private_sqlite(Path(path))  # 0600 in a 0700 directory, before SQLite creates it
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def alembic_config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(sync_conn) -> None:
    context = MigrationContext.configure(sync_conn)
    current = context.get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if current != head:
        log.info("migrating database schema %s -> %s", current or "empty", head)
        command.upgrade(alembic_config(sync_conn), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


@contextlib.asynccontextmanager
async def startup_lock(engine: AsyncEngine):
    """Held while a control plane migrates, seeds and creates its keys: replicas starting together
    on one PostgreSQL database take turns (a PostgreSQL advisory lock, released when the holding
    session ends, so a replica that dies while starting never blocks the others). SQLite serves
    one control plane and needs none."""
    if not is_postgres(engine):
        yield
        return
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": STARTUP_LOCK})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": STARTUP_LOCK})
            await conn.commit()


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


def insert_ignore(engine: AsyncEngine, table: sa.Table):
    """INSERT that skips rows whose unique key exists already (idempotent ingestion)."""
    if is_postgres(engine):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()
