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
from sqlalchemy.ext.asyncio import AsyncEngine

from relaygate.controlplane import keyring, metrics, policystore, seed
from relaygate.controlplane.apispec import load_spec
from relaygate.controlplane.audit import Ingestor
from relaygate.controlplane.auth import Authenticator
from relaygate.controlplane.bundles import BundleService
from relaygate.controlplane.custody import KeyService
from relaygate.controlplane.evidence_jobs import EvidenceJobs
from relaygate.controlplane.transparency import TransparencyLog
from relaygate.controlplane.xds import XdsServer
from relaygate.controlplane.deployments import Deployments, pins_for
from relaygate.controlplane.fleet import Fleet
from relaygate.controlplane.db import create_engine, migrate, startup_lock
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
    evidence: EvidenceJobs = field(init=False)
    xds: XdsServer = field(init=False)
    fleet: Fleet = field(init=False)
    deployments: Deployments = field(init=False)
    opa_agents: OpaAgents = field(init=False)
    spec: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    workspace_cache: dict[str, Any] = field(default_factory=dict)
    workspace_rps: dict[str, Any] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)  # called on every config/fleet change
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def config_changed(self) -> None:
        """Workspaces, keys, upstreams, budgets, secrets or policies changed."""
        self.workspace_cache.clear()
        await self.bundles.changed()
        for fn in self.listeners:
            await fn()

    async def fleet_changed(self) -> None:
        for fn in self.listeners:
            await fn()


async def start(settings: Settings) -> Services:
    s = Services(settings)
    private_dir(settings.data_dir)  # keys, tokens, evidence bundles, the default SQLite file
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
    s.transparency = TransparencyLog(s.engine, s.keys, replica_id=settings.replica_id, lease_ttl=settings.lease_ttl)
    await s.transparency.load()
    s.ingestor = Ingestor(s.engine, s.transparency)
    s.evidence = EvidenceJobs(s.engine, s.transparency, s.keys, settings.data_dir / "evidence")

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
    """Periodic tree heads and unfinished evidence jobs."""
    s.tasks.append(asyncio.create_task(s.transparency.run(s.settings.checkpoint_interval)))
    await s.evidence.resume()
    await s.deployments.resume()


async def stop(s: Services) -> None:
    for t in s.tasks:
        t.cancel()
    if getattr(s, "transparency", None) is not None:
        await s.transparency.close()
    if s.http is not None:
        await s.http.close()
    if s.engine is not None:
        await s.engine.dispose()
