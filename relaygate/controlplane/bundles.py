"""Builds and serves each tenant's signed policy bundle (relaygate/contract/bundle.py is the format).

A bundle holds the platform modules, every live workspace policy (at its
current version, or the version a deployment pinned for the tenant), the
gateway config documents and the sealed secrets. Each build is compiled with
the data plane's own engine and config parser before it is signed, so a
policy or config that would not load never reaches a sidecar; if a build
fails, the tenant keeps its last good bundle.

Any change to what bundles hold calls :meth:`BundleService.changed`, which
wakes the sidecars' long polls.
"""

from __future__ import annotations

import os

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from relaygate.controlplane import metrics
from relaygate.controlplane import plans as plans_mod
from relaygate.controlplane import schema
from relaygate.controlplane.policystore import active_workspace_policies, platform_sources
from relaygate.contract import bundle as bundle_mod
from relaygate.contract import config as config_mod
from relaygate.decision.policy_engine import PolicyError, RegorusEngine, build_engine
from relaygate.contract.scope import KINDS, effective_permissions
from relaygate.decision.workspace_policy import WORKSPACE_POLICY_DATA, policy_modules, split_bundle

log = logging.getLogger("relaygate.controlplane.bundles")

# regorus objects belong to the thread that made them: every compile and
# evaluation in the control plane happens on this one thread.
POLICY_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")


async def on_policy_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(POLICY_THREAD, fn, *args)


def _merge(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v
    return dst


async def gateway_documents(conn, issuers=(), plans: dict | None = None) -> dict:
    """The config documents a gateway needs (relaygate/contract/config.py's from_documents), without
    secrets: ``issuers`` (relaygate/contract/jwtauth.py Issuer) are the trusted JWT issuers; a
    workspace's tier limits are its plan's unless it has its own (plans.py)."""
    gateway = (
        await conn.execute(sa.select(schema.settings.c.value).where(schema.settings.c.name == "gateway"))
    ).scalar() or {}
    ws_rows = (
        (
            await conn.execute(
                sa.select(schema.workspaces)
                .where(schema.workspaces.c.deleted_ms.is_(None))
                .order_by(schema.workspaces.c.id)
            )
        )
        .mappings()
        .all()
    )
    workspaces = {}
    for w in ws_rows:
        s = w["settings"] or {}
        doc = {
            "sovereignty": s.get("sovereignty") or {},
            "limits": {
                k: v
                for k, v in plans_mod.effective(s, plans or {}, 0)["limits"].items()
                if k in ("requests_per_second", "tokens_per_minute") and v is not None
            },
        }
        if s.get("default_max_output_tokens"):
            doc["default_max_output_tokens"] = s["default_max_output_tokens"]
        if s.get("model_aliases"):
            doc["model_aliases"] = s["model_aliases"]
        workspaces[w["id"]] = doc
    upstreams = [
        r[0]
        for r in (
            await conn.execute(
                sa.select(schema.upstreams.c.spec)
                .where(schema.upstreams.c.deleted_ms.is_(None))
                .order_by(schema.upstreams.c.created_ms, schema.upstreams.c.name)
            )
        ).all()
    ]
    keys = []
    for k in (
        await conn.execute(
            sa.select(schema.api_keys)
            .where(schema.api_keys.c.workspace_id.in_(list(workspaces)))
            .order_by(schema.api_keys.c.id)
        )
    ).mappings():
        scope = k["scope"] or {}
        keys.append(
            {
                "id": k["id"],
                "workspace": k["workspace_id"],
                "name": k["name"],
                "kind": k["kind"],
                "salt": k["salt"],
                "hash": k["hash"],
                # kind and permissions travel too: the sidecar refuses keys that may not
                # call the gateway (read-only ones, those without gateway:call).
                "scope": {
                    "endpoints": scope.get("endpoints") or list(config_mod.ENDPOINTS),
                    "models": scope.get("models") or ["*"],
                    "permissions": sorted(effective_permissions(k["kind"], scope.get("permissions"))),
                    # the keys it was minted or rotated from: their per-key budgets apply
                    "lineage": list(scope.get("lineage") or []),
                },
                "revoked": k["revoked_ms"] is not None,
                "expires_at": k["expires_ms"] / 1000 if k["expires_ms"] is not None else None,
            }
        )
    budgets = []
    for b in (
        await conn.execute(
            sa.select(schema.budgets)
            .where(schema.budgets.c.deleted_ms.is_(None), schema.budgets.c.workspace_id.in_(list(workspaces)))
            .order_by(schema.budgets.c.workspace_id, schema.budgets.c.id)
        )
    ).mappings():
        budgets.append(
            {
                "id": b["id"],
                "workspace": b["workspace_id"],
                "key": b["key_id"],
                "unit": b["unit"],
                "window": b["window"],
                "limit": b["limit_amount"] if b["unit"] == "tokens" else b["limit_amount"] / 1_000_000,
            }
        )
    docs = {
        "gateway": gateway,
        "workspaces": {"workspaces": workspaces},
        "upstreams": {"upstreams": upstreams},
        "keys": {"keys": keys},
        "budgets": {"budgets": budgets},
    }
    sessions = await live_sessions(conn, list(workspaces))
    if sessions:  # absent when none: a bundle without sessions is byte-for-byte what it was before them
        docs["sessions"] = {"sessions": sessions}
    if issuers:
        docs["auth"] = {"jwt_issuers": [i.document() for i in issuers]}
    return docs


async def live_sessions(conn, workspaces: list[str], now: int | None = None) -> list[dict]:
    """The session tokens a gateway may accept: not ended, not expired, every session they were
    made from alive, the key that made them live (not revoked, rotated or expired). Salt and hash
    only, as for keys; permissions already narrowed to the maker key's. A session that expires
    leaves at the next build (any change); until then each sidecar refuses it by its own clock."""
    now = now if now is not None else int(time.time() * 1000)
    rows = (
        (
            await conn.execute(
                sa.select(schema.sessions)
                .where(
                    schema.sessions.c.revoked_ms.is_(None),
                    schema.sessions.c.expires_ms > now,
                    schema.sessions.c.workspace_id.in_(workspaces),
                )
                .order_by(schema.sessions.c.id)
            )
        )
        .mappings()
        .all()
    )
    if not rows:
        return []
    alive = {r["id"] for r in rows}
    key_ids = {r["principal"].get("key_id") for r in rows} - {None}
    keys = {
        k["id"]: k
        for k in (await conn.execute(sa.select(schema.api_keys).where(schema.api_keys.c.id.in_(key_ids))))
        .mappings()
        .all()
    }
    out = []
    for r in rows:
        p = r["principal"] or {}
        parents = list(p.get("sessions") or [])
        if any(parent not in alive for parent in parents):
            continue
        role = p.get("role") if p.get("role") in KINDS else "read_only"
        permissions = effective_permissions(role, p.get("permissions") or [])
        kid = p.get("key_id")
        if kid:
            k = keys.get(kid)
            if k is None or k["revoked_ms"] is not None or k["rotated_to"] or k["workspace_id"] != r["workspace_id"]:
                continue
            if k["expires_ms"] is not None and k["expires_ms"] <= now:
                continue
            permissions &= effective_permissions(k["kind"], (k["scope"] or {}).get("permissions"))
        doc = {
            "id": r["id"],
            "workspace": r["workspace_id"],
            "salt": r["salt"],
            "hash": r["hash"],
            "key": kid or None,
            "kind": role,
            "permissions": sorted(permissions),
            "parents": parents,
            "expires_at": r["expires_ms"] / 1000,
            "origin": str(p.get("origin") or "")[:200],
        }
        if not kid:  # made from a JWT: the endpoints and models its claims allowed
            doc["endpoints"] = list(p["endpoints"]) if p.get("endpoints") is not None else list(config_mod.ENDPOINTS)
            doc["models"] = list(p["models"]) if p.get("models") is not None else ["*"]
        out.append(doc)
    return out


class BundleService:
    def __init__(self, engine, secrets, signer, fleet_token: str, pins=None, issuers=()) -> None:
        self.engine, self.secrets, self.signer, self.fleet_token = engine, secrets, signer, fleet_token
        self.issuers = tuple(issuers)  # trusted JWT issuers (public keys only), shipped in every bundle
        self.pins = pins  # async (conn, tenant) -> {policy_id: version}; deployments
        self.plans: dict = {}  # plan name -> limits (plans.py), set by services
        self.generation = 0
        self._cond = asyncio.Condition()
        self._cache: dict[str, tuple[int, bytes, str]] = {}
        self._lock = asyncio.Lock()
        self.last_error: dict[str, str] = {}
        self.closing = False

    async def close(self) -> None:
        """Shutting down: every long poll answers "unchanged" now instead of holding the stop up
        for up to its timeout (the sidecar keeps its bundle and polls the next process)."""
        async with self._cond:
            self.closing = True
            self._cond.notify_all()

    async def changed(self) -> None:
        """Something a bundle holds changed: rebuild on next request and wake long polls."""
        async with self._cond:
            self.generation += 1
            self._cond.notify_all()

    async def sources(self, tenant: str, override=None) -> tuple[dict, dict, dict, dict]:
        """(modules, data, config documents, secrets) for a tenant's bundle.

        ``override`` (an ActivePolicy) replaces or adds one workspace policy: the dry run
        evaluates a version exactly as a bundle would carry it.
        """
        async with self.engine.connect() as c:
            docs = await gateway_documents(c, self.issuers, self.plans)
            platform, pdata = await platform_sources(c)
            pins = await self.pins(c, tenant) if self.pins else {}
            active = await active_workspace_policies(c, pins)
        if override is not None:
            active = [p for p in active if p.policy_id != override.policy_id] + [override]
        generated, policy_data = policy_modules(active)
        # Workspace policies' data stays out of the gateway's data tree: the sidecar hands each
        # policy only its own, in its own engine (relaygate/decision/policy_sandbox.py).
        data = {**_merge({}, pdata), WORKSPACE_POLICY_DATA: policy_data}
        secrets = await self.secrets.all()
        return {**platform, **generated}, data, docs, secrets

    @staticmethod
    def check(modules: dict, data: dict, docs: dict, secrets: dict) -> None:
        """Load the would-be bundle exactly as a sidecar will; raise if it would not."""
        config_mod.from_documents(docs, secrets, environ=os.environ)
        # Compiles the platform modules and the entry point; its regorus objects live and die in this
        # thread. Workspace modules are parsed one by one, alone (evaluating them is the sandbox's job).
        platform, pdata, wp = split_bundle(modules, data)
        RegorusEngine(sources=(platform, pdata))
        for entries in wp.by_workspace.values():
            for p in entries:
                build_engine({f"{p.pid}.rego": p.source}, {})

    async def get(self, tenant: str) -> tuple[bytes, str]:
        """(bundle bytes, revision) for the tenant, built if anything changed."""
        cached = self._cache.get(tenant)
        gen = self.generation
        if cached and cached[0] == gen:
            return cached[1], cached[2]
        async with self._lock:
            cached = self._cache.get(tenant)
            if cached and cached[0] == gen:
                return cached[1], cached[2]
            started = time.perf_counter()
            try:
                modules, data, docs, secrets = await self.sources(tenant)
                await on_policy_thread(self.check, modules, data, docs, secrets)
                blob, revision = await asyncio.to_thread(
                    bundle_mod.build,
                    modules=modules,
                    data=data,
                    config=docs,
                    secrets=secrets,
                    fleet_token=self.fleet_token,
                    signer=self.signer,
                    metadata={"tenant": tenant},
                )
            except (config_mod.ConfigError, PolicyError, ValueError) as e:
                metrics.BUNDLE_BUILDS.labels("failed").inc()
                self.last_error[tenant] = str(e)
                log.error("bundle for tenant %s does not build (%s); serving the last good one", tenant, e)
                if cached:
                    self._cache[tenant] = (gen, cached[1], cached[2])
                    return cached[1], cached[2]
                raise
            self.last_error.pop(tenant, None)
            metrics.BUNDLE_BUILDS.labels("built").inc()
            if not cached or cached[2] != revision:
                log.info(
                    "bundle for tenant %s: revision %s (%d modules, %.0f ms)",
                    tenant,
                    revision,
                    len(modules),
                    (time.perf_counter() - started) * 1000,
                )
            self._cache[tenant] = (gen, blob, revision)
            return blob, revision

    async def wait(self, tenant: str, known: str, timeout: float) -> tuple[bytes, str] | None:
        """Long poll: the bundle once its revision differs from ``known``, or None at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            blob, revision = await self.get(tenant)
            if revision != known:
                return blob, revision
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closing:
                return None
            gen = self.generation
            async with self._cond:
                try:
                    await asyncio.wait_for(
                        self._cond.wait_for(lambda: self.generation != gen or self.closing), remaining
                    )
                except asyncio.TimeoutError:
                    return None
