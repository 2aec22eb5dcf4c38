"""Everything a handler may reach, created once at start in dependency order."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.controlplane import changefeed, keyring, metrics, policystore, retention, seed
from relaygate.controlplane.apispec import load_spec
from relaygate.controlplane.audit import Ingestor
from relaygate.controlplane.auth import Authenticator
from relaygate.controlplane.bundles import BundleService
from relaygate.controlplane.changefeed import ChangeFeed
from relaygate.controlplane.custody import KeyService
from relaygate.controlplane.evidence_jobs import EvidenceJobs
from relaygate.controlplane.transparency import TransparencyLog
from relaygate.controlplane.xds import XdsServer
from relaygate.controlplane.deployments import Deployments, pins_for
from relaygate.controlplane.webhooks import Webhooks
from relaygate.controlplane.fleet import Fleet
from relaygate.controlplane.leases import Leases, scan_forever
from relaygate.controlplane.db import create_engine, is_postgres, migrate, startup_lock
from relaygate.controlplane.sealing import Sealer
from relaygate.controlplane.secretstore import SecretStore
from relaygate.controlplane.settings import Settings
from relaygate.contract.private_files import private_dir
from relaygate.contract.bundle import BundleSigner
from relaygate.controlplane.opa_agents import OpaAgents

log = logging.getLogger("relaygate.controlplane")


Listener = Callable[[], Awaitable[None]]


@dataclass
class Services:
    """The control plane's domain services, typed. Built by :func:`start` in dependency order; a
    field without a default exists once ``start`` has made it (the two ``stop`` must close are
    Optional, since a failed start may not have reached them)."""

    settings: Settings
    engine: AsyncEngine | None = None
    http: aiohttp.ClientSession | None = None
    secrets: SecretStore = field(init=False)
    auth: Authenticator = field(init=False)
    bundles: BundleService = field(init=False)
    bundle_signer: BundleSigner = field(init=False)
    keys: KeyService = field(init=False)
    transparency: TransparencyLog = field(init=False)
    ingestor: Ingestor = field(init=False)
    leases: Leases = field(init=False)
    evidence: EvidenceJobs = field(init=False)
    xds: XdsServer = field(init=False)
    fleet: Fleet = field(init=False)
    deployments: Deployments = field(init=False)
    webhooks: Webhooks = field(init=False)
    opa_agents: OpaAgents = field(init=False)
    spec: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    workspace_cache: dict[str, Any] = field(default_factory=dict)
    workspace_rps: dict[str, Any] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)  # called on every config/fleet change
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    feed: ChangeFeed | None = None  # PostgreSQL: LISTEN/NOTIFY between replicas (changefeed.py)

    # Every change below is announced to the other replicas, which apply the same invalidation on
    # receipt (``apply_remote``) and reread the database, and applied here.
    async def config_changed(self) -> None:
        """Workspaces, keys, upstreams, budgets, secrets or policies changed."""
        await self.notify("config")  # first: the other replicas start rereading while this one does
        await self._invalidate(frozenset({"config"}))

    async def fleet_changed(self) -> None:
        await self.notify("fleet")  # first: the other replicas start rereading while this one does
        await self._invalidate(frozenset({"fleet"}))

    async def bundles_changed(self) -> None:
        """Only what bundles carry changed (sessions started or ended)."""
        await self.notify("bundles")  # first: the other replicas start rereading while this one does
        await self._invalidate(frozenset({"bundles"}))

    async def keys_changed(self) -> None:
        """Signing keys registered, rotated or retired: the ingestor's cache and the tree-head key."""
        await self.notify("keys")  # first: the other replicas start rereading while this one does
        await self._invalidate(frozenset({"keys"}))

    async def apply_remote(self, kinds: frozenset[str]) -> None:
        """Another replica changed something (or the feed reconnected: every kind)."""
        await self._invalidate(kinds)
        if "keys" in kinds:
            await self.keys.reload()

    async def _invalidate(self, kinds: frozenset[str]) -> None:
        if "config" in kinds:
            self.workspace_cache.clear()
        if kinds & {"config", "bundles"}:
            await self.bundles.changed()
        if "keys" in kinds:
            self.ingestor.forget_keys()
        if kinds & {"config", "fleet"}:
            for fn in self.listeners:
                await fn()

    async def notify(self, kind: str) -> None:
        """Tell the other replicas (after the change committed). A failure is logged: the change
        stands, and the others catch up at their next feed reconnect."""
        if self.feed is None or self.engine is None:
            return
        try:
            async with self.engine.begin() as c:
                await c.execute(
                    sa.text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": changefeed.CHANNEL, "payload": changefeed.payload(self.settings.replica_id, kind)},
                )
        except Exception:
            log.exception("change notification (%s) not sent; other replicas may serve stale state", kind)


async def start(settings: Settings) -> Services:
    s = Services(settings)
    private_dir(settings.data_dir)  # keys, tokens, the default SQLite file
    s.engine = create_engine(settings.database_url)
    s.secrets = SecretStore(s.engine, Sealer(settings.master_key))
    async with startup_lock(s.engine):
        await migrate(s.engine)
        await seed.seed(s.engine, s.secrets, settings.seed_config_dir)
        if settings.seed_policy_dir:
            added = await policystore.register_platform(s.engine, settings.seed_policy_dir)
            if added:
                log.info("registered %d new platform policy versions from %s", added, settings.seed_policy_dir)
        s.bundle_signer = await keyring.load_or_create_bundle_signer(s.secrets)
        s.keys = KeyService(s.engine, s.secrets)
        await s.keys.start()
    s.auth = Authenticator(s.engine, s.secrets.pepper, settings)
    s.bundles = BundleService(s.engine, s.secrets, s.bundle_signer, settings.fleet_token, issuers=s.auth.issuers())
    s.bundles.plans = settings.plans
    s.transparency = TransparencyLog(s.engine, s.keys, replica_id=settings.replica_id, lease_ttl=settings.lease_ttl)
    await s.transparency.load()
    s.ingestor = Ingestor(s.engine, s.transparency)
    s.leases = Leases(s.engine, settings.replica_id, settings.lease_ttl)
    await s.leases.start_alone()
    s.evidence = EvidenceJobs(s.engine, s.transparency, s.keys, s.leases)

    s.spec = load_spec()
    s.http = aiohttp.ClientSession()
    s.xds = XdsServer(s.engine)
    s.listeners.append(s.xds.changed)
    s.fleet = Fleet(s.engine, s.xds)
    s.opa_agents = OpaAgents(s.engine)
    await s.fleet.load()
    metrics.FLEET.source = s.fleet
    s.bundles.pins = pins_for
    s.deployments = Deployments(s)
    await s.deployments.load()
    s.webhooks = Webhooks(s)
    if is_postgres(s.engine):  # several replicas may share it: listen before serving
        s.feed = ChangeFeed(settings.database_url, settings.replica_id, s.apply_remote)
        await s.feed.start()
        log.info("change feed: replica %s listening on %s", settings.replica_id, changefeed.CHANNEL)
    pub = settings.data_dir / "bundle-signing.pub"
    pub.parent.mkdir(parents=True, exist_ok=True)
    pub.write_bytes(s.bundle_signer.public_pem())
    if settings.bundle_public_key:  # public: readable by the sidecars' user (0644 despite the umask)
        shared = Path(settings.bundle_public_key)
        shared.parent.mkdir(parents=True, exist_ok=True)
        shared.write_bytes(s.bundle_signer.public_pem())
        shared.chmod(0o644)
    return s


async def run_background(s: Services) -> None:
    """Periodic tree heads; unfinished evidence jobs and deployments nobody holds, taken over now
    and by a scan every lease_ttl/3 seconds (another replica's crashed work moves here)."""
    s.tasks.append(asyncio.create_task(s.transparency.run(s.settings.checkpoint_interval)))
    await s.evidence.resume()
    await s.deployments.resume()
    s.tasks.append(
        asyncio.create_task(
            scan_forever(
                s.settings.lease_ttl / 3,
                # and the fleet and deployment gauges, reread so every replica exports the same
                [s.evidence.resume, s.deployments.resume, s.fleet.load, s.deployments.load],
            )
        )
    )
    s.tasks.append(asyncio.create_task(s.webhooks.run()))  # on the replica holding the webhooks lease
    s.tasks.append(asyncio.create_task(retention.run(s, s.settings.retention_interval)))


async def stop(s: Services) -> None:
    for t in s.tasks:
        t.cancel()
    # The work held here ends and its leases are released: another replica resumes it at once.
    for part in ("deployments", "evidence"):
        if hasattr(s, part):
            await getattr(s, part).stop()
    if getattr(s, "leases", None) is not None:  # the webhooks and retention leases, and any left
        await s.leases.release_all()
    if s.feed is not None:
        await s.feed.stop()
    if getattr(s, "transparency", None) is not None:
        await s.transparency.close()
    if s.http is not None:
        await s.http.close()
    if s.engine is not None:
        await s.engine.dispose()
