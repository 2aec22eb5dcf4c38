"""First start: import a config directory (the data plane's YAML files) into an empty database.

Workspaces, upstreams (in file order, which is routing preference), key
hashes, budgets, gateway limits, the key pepper and provider credentials move
into the database once; from then on the control plane is their source.
"""

from __future__ import annotations

import os

import logging
import secrets as pysecrets
from pathlib import Path

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.secretstore import PEPPER, SecretStore
from relaygate.contract import config as config_mod

log = logging.getLogger("relaygate.controlplane.seed")
# Every setting of gateway.yaml that gateways read (relaygate/contract/config.py): a key left out here would
# be dropped silently at the first start, and every gateway would run on its default.
GATEWAY_SETTINGS = ("max_body_bytes", "default_max_output_tokens", "unauthenticated")


async def is_empty(engine) -> bool:
    async with engine.connect() as c:
        return (await c.execute(sa.select(sa.func.count()).select_from(schema.workspaces))).scalar() == 0 and (
            await c.execute(sa.select(sa.func.count()).select_from(schema.upstreams))
        ).scalar() == 0


def workspace_settings(w: config_mod.Workspace, raw: dict) -> dict:
    limits = raw.get("limits") or {}
    return {
        "sovereignty": {
            "allowed_jurisdictions": list(w.allowed_jurisdictions),
            "allowed_regions": list(w.allowed_regions),
        },
        "default_max_output_tokens": raw.get("default_max_output_tokens"),
        "limits": {
            "requests_per_second": limits.get("requests_per_second"),
            "tokens_per_minute": limits.get("tokens_per_minute"),
            "control_plane_rps": limits.get("control_plane_rps"),
        },
        "relay": raw.get("relay") or {"fallbacks": {}},
        "model_aliases": dict(w.model_aliases),
    }


async def seed(engine, store: SecretStore, config_dir: Path | None) -> None:
    if not await is_empty(engine):
        return
    if config_dir is None:
        async with engine.begin() as c:
            await store.put(PEPPER, pysecrets.token_urlsafe(32), c)
            await c.execute(schema.settings.insert().values(name="gateway", value={}))
        log.info("empty database: created a key pepper; add workspaces and upstreams through the API")
        return
    docs, secrets = config_mod.read_documents(config_dir)
    cfg = config_mod.from_documents(
        docs, secrets, environ=os.environ
    )  # validates everything before anything is written
    now = now_ms()
    raw_ws = (docs.get("workspaces") or {}).get("workspaces") or {}
    async with engine.begin() as c:
        await c.execute(
            schema.settings.insert().values(
                name="gateway", value={k: v for k, v in (docs.get("gateway") or {}).items() if k in GATEWAY_SETTINGS}
            )
        )
        for wid, w in cfg.workspaces.items():
            await c.execute(
                schema.workspaces.insert().values(
                    id=wid,
                    display_name=wid,
                    settings=workspace_settings(w, raw_ws.get(wid) or {}),
                    created_ms=now,
                    updated_ms=now,
                )
            )
        for i, u in enumerate((docs.get("upstreams") or {}).get("upstreams") or []):
            await c.execute(
                schema.upstreams.insert().values(name=u["name"], spec=u, created_ms=now + i, updated_ms=now + i)
            )
        for k in (docs.get("keys") or {}).get("keys") or []:
            scope = k.get("scope") or {}
            await c.execute(
                schema.api_keys.insert().values(
                    id=k["id"],
                    workspace_id=k["workspace"],
                    name=k.get("name", ""),
                    kind=k.get("kind", "standard"),
                    salt=k["salt"],
                    hash=k["hash"],
                    # permissions as the gateway reads them (relaygate/contract/scope.py): absent means all,
                    # a listed one (even empty) means exactly those; expiry kept, not dropped.
                    scope={
                        "endpoints": scope.get("endpoints") or list(config_mod.ENDPOINTS),
                        "models": scope.get("models") or ["*"],
                        "permissions": ["*"] if scope.get("permissions") is None else list(scope["permissions"]),
                    },
                    created_ms=now,
                    created_by="seed",
                    revoked_ms=now if k.get("revoked") else None,
                    expires_ms=int(cfg.keys[k["id"]].expires_at * 1000) if cfg.keys[k["id"]].expires_at else None,
                )
            )
        for b in cfg.budgets:
            await c.execute(
                schema.budgets.insert().values(
                    id=b.id,
                    workspace_id=b.workspace,
                    key_id=b.key,
                    unit=b.unit,
                    window=b.window,
                    limit_amount=b.limit,
                    created_ms=now,
                    updated_ms=now,
                )
            )
        await store.put(PEPPER, cfg.pepper.decode(), c)
        for name, value in {u.credential_name: u.credential for u in cfg.upstreams}.items():
            await store.put(name, value, c)
    log.info(
        "seeded from %s: %d workspaces, %d upstreams, %d keys, %d budgets",
        config_dir,
        len(cfg.workspaces),
        len(cfg.upstreams),
        len(cfg.keys),
        len(cfg.budgets),
    )
