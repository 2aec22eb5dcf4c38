"""Policies in the database: platform modules (from the repository) and workspace policies.

Platform modules (``policies/relaygate/*.rego``) are registered at start: a
module whose source changed gets a new version, labelled with the semver it
declares (``policy := "relaygate.scope@1.0.0"``), so receipts citing it resolve
to exact source. Workspace policies are YAML documents with integer versions;
each update appends a version and moves ``current_version`` in one transaction.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from pathlib import Path

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.db import now_ms
from relaygate.decision.policy_engine import load_policy_sources
from relaygate.decision.workspace_policy import ActivePolicy, PolicyDocument, PolicyDocumentError, parse_document

log = logging.getLogger("relaygate.controlplane.policies")
_DECLARED = re.compile(r'^policy\s*:=\s*"([A-Za-z0-9_.-]+)@([A-Za-z0-9_.+-]+)"', re.M)
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.M)


@functools.lru_cache(maxsize=1024)
def parse_cached(source: str) -> PolicyDocument:
    """parse_document, remembered by source text: stored versions never change, and every bundle
    build and policy listing reads them again. A document that does not parse is not cached."""
    return parse_document(source)


async def parse_off_loop(source: str) -> PolicyDocument:
    """Parse a (user-sent) policy document on a worker thread: YAML parsing costs milliseconds per
    kilobyte, which must not stall every other request on the event loop."""
    return await asyncio.to_thread(parse_cached, source)


async def warm(sources) -> None:
    """Parse the documents not cached yet, off the event loop (errors are left to the caller's own parse)."""

    def run():
        for s in sources:
            try:
                parse_cached(s)
            except PolicyDocumentError:
                pass

    await asyncio.to_thread(run)


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def declared(path: str, source: str) -> tuple[str, str]:
    """(policy id, label) a platform module declares; package name and '1' when it declares none."""
    m = _DECLARED.search(source)
    if m:
        return m[1], m[2]
    pkg = _PACKAGE.search(source)
    return (pkg[1] if pkg else path.removesuffix(".rego").replace("/", ".")), "1"


async def register_platform(engine, policy_dir: Path) -> int:
    """Record the platform modules and data of ``policy_dir``; return how many versions were added."""
    modules, data = load_policy_sources(policy_dir)
    added, now = 0, now_ms()
    async with engine.begin() as c:
        await c.execute(schema.settings.delete().where(schema.settings.c.name == "platform_data"))
        await c.execute(schema.settings.insert().values(name="platform_data", value=data))
        for path, source in sorted(modules.items()):
            pid, label = declared(path, source)
            row = (await c.execute(sa.select(schema.policies).where(schema.policies.c.id == pid))).mappings().first()
            d = digest(source)
            if row is None:
                await c.execute(
                    schema.policies.insert().values(
                        id=pid, workspace_id=None, name=path, current_version=1, created_ms=now, updated_ms=now
                    )
                )
                version = 1
            else:
                cur = (
                    (
                        await c.execute(
                            sa.select(schema.policy_versions).where(
                                schema.policy_versions.c.policy_id == pid,
                                schema.policy_versions.c.version == row["current_version"],
                            )
                        )
                    )
                    .mappings()
                    .first()
                )
                if cur["digest"] == d:
                    continue
                if cur["label"] == label:
                    log.warning(
                        "platform policy %s changed but still declares version %s; bump it so "
                        "receipts can tell the two apart",
                        pid,
                        label,
                    )
                version = row["current_version"] + 1
                await c.execute(
                    schema.policies.update()
                    .where(schema.policies.c.id == pid)
                    .values(current_version=version, updated_ms=now, name=path)
                )
            await c.execute(
                schema.policy_versions.insert().values(
                    policy_id=pid,
                    version=version,
                    label=label,
                    source=source,
                    digest=d,
                    created_ms=now,
                    created_by="platform",
                )
            )
            added += 1
    return added


async def platform_sources(conn) -> tuple[dict[str, str], dict]:
    """Current platform modules (by their file path) and the platform data document."""
    rows = (
        await conn.execute(
            sa.select(schema.policies.c.name, schema.policy_versions.c.source)
            .join(
                schema.policy_versions,
                sa.and_(
                    schema.policy_versions.c.policy_id == schema.policies.c.id,
                    schema.policy_versions.c.version == schema.policies.c.current_version,
                ),
            )
            .where(schema.policies.c.workspace_id.is_(None), schema.policies.c.deleted_ms.is_(None))
        )
    ).all()
    data = (
        await conn.execute(sa.select(schema.settings.c.value).where(schema.settings.c.name == "platform_data"))
    ).scalar()
    return {name: source for name, source in rows}, data or {}


async def active_workspace_policies(conn, pins: dict[str, int] | None = None) -> list[ActivePolicy]:
    """Every live workspace policy at its current version (or the version ``pins`` names)."""
    pins = pins or {}
    rows = (
        await conn.execute(
            sa.select(schema.policies.c.id, schema.policies.c.workspace_id, schema.policies.c.current_version)
            .join(schema.workspaces, schema.workspaces.c.id == schema.policies.c.workspace_id)
            .where(schema.policies.c.deleted_ms.is_(None), schema.workspaces.c.deleted_ms.is_(None))
        )
    ).all()
    found = []
    for pid, ws, current in rows:
        version = pins.get(pid, current)
        source = (
            await conn.execute(
                sa.select(schema.policy_versions.c.source).where(
                    schema.policy_versions.c.policy_id == pid, schema.policy_versions.c.version == version
                )
            )
        ).scalar()
        if source is None:
            continue
        found.append((ws, pid, version, source))
    # Off the event loop (and cached): a bundle build must not parse YAML where requests are served.
    docs = await asyncio.to_thread(lambda: [parse_cached(f[3]) for f in found])
    return [ActivePolicy(ws, pid, version, doc) for (ws, pid, version, _), doc in zip(found, docs)]
