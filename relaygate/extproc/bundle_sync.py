"""Keeps the sidecar on the newest good policy bundle of its tenant.

:class:`BundleSync` long-polls the control plane's bundle endpoint (ETag,
``If-None-Match``, ``Prefer: wait=N``), verifies each bundle against the
control plane's pinned public key and its contract version, keeps the last
good one on disk and swaps it in whole between requests. When the control
plane is unreachable the sidecar starts from, and keeps enforcing, the copy on
disk. A background task on the event loop, never on a call's path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Callable

import aiohttp

from relaygate.contract import bundle as bundle_mod
from relaygate.contract import config as config_mod
from relaygate.extproc import metrics
from relaygate.decision.admission import Admission
from relaygate.extproc.cpclient import Backoff, ControlPlane, tls_failure
from relaygate.decision.ledger import Ledger
from relaygate.decision.policy_engine import PolicyError
from relaygate.decision.snapshot import admission_from_bundle

log = logging.getLogger("relaygate.sync")


class BundleSync:
    """Keeps the processor on the newest good bundle for this sidecar's tenant."""

    WAIT = 20  # seconds the control plane may hold a poll open

    def __init__(
        self,
        cp: ControlPlane,
        verify_key,
        store: Path,
        ledger: Ledger,
        install: Callable[[Admission], None],
        limits=None,
        engine=None,
    ) -> None:
        self.cp, self.verify_key, self.store, self.ledger, self.install = cp, verify_key, store, ledger, install
        self.limits = limits
        self.engine = engine  # a remote engine (OPA) for the platform policy; None: regorus from the bundle
        self.revision: str | None = None
        self.last_error: str | None = None
        self.last_success = 0.0

    @property
    def url(self) -> str:
        return self.cp.endpoint(f"/v1/fleet/bundles/{self.cp.tenant}")

    async def _load(self, blob: bytes, source: str) -> Admission:
        b = await asyncio.to_thread(bundle_mod.read, blob, verify_key=self.verify_key, fleet_token=self.cp.fleet_token)
        adm = await asyncio.to_thread(admission_from_bundle, b, self.ledger, self.limits, None, self.engine)
        if self.engine is None:  # build this thread's evaluator now, not on the first call after the swap
            adm.engine._evaluator()
        log.info(
            "policy bundle %s loaded from %s (%d modules, %d workspaces, %d keys)",
            b.revision,
            source,
            len(b.modules),
            len(adm.config.workspaces),
            len(adm.config.keys),
        )
        return adm

    def _save(self, blob: bytes) -> None:
        """Write the bundle atomically: the copy on disk is always a whole, verified bundle."""
        self.store.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.store.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.store)

    async def fetch(self, wait: int = 0, timeout: float = 10.0) -> bytes | None:
        """One poll: the new bundle's bytes, or None when unchanged (304)."""
        headers = self.cp.headers()
        if self.revision:
            headers["If-None-Match"] = f'"{self.revision}"'
            if wait:
                headers["Prefer"] = f"wait={wait}"
        async with self.cp.http().get(
            self.url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout + wait)
        ) as r:
            if r.status == 304:
                return None
            if r.status != 200:
                raise RuntimeError(f"bundle endpoint answered {r.status}: {(await r.text())[:300]}")
            return await r.read()

    async def initial(self, on_wait: Callable[[str], None] | None = None) -> Admission:
        """The first snapshot: from the control plane, else the copy on disk, else retry until one works."""
        backoff = Backoff()
        while True:
            try:
                blob = await self.fetch(timeout=5.0)
                adm = await self._load(blob, self.url)
                self._save(blob)
                self._accepted(adm)
                return adm
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, OSError) as e:
                self.last_error = (
                    f"control plane certificate refused: {e}" if tls_failure(e) else f"control plane unreachable: {e}"
                )
            except (bundle_mod.BundleError, config_mod.ConfigError, PolicyError) as e:
                self.last_error = f"bundle rejected: {e}"
                log.error("bundle from %s rejected: %s", self.url, e)
            if self.store.exists():
                try:
                    adm = await self._load(self.store.read_bytes(), str(self.store))
                    log.warning("starting from the last good bundle on disk (%s)", self.last_error)
                    self._accepted(adm, fresh=False)
                    return adm
                except (bundle_mod.BundleError, config_mod.ConfigError, PolicyError) as e:
                    log.error("bundle on disk %s is unusable: %s", self.store, e)
            msg = f"no policy bundle yet ({self.last_error}); retrying in about {backoff.delay:.0f}s"
            log.warning(msg)
            if on_wait:
                on_wait(msg)
            await backoff.wait()

    def _accepted(self, adm: Admission, fresh: bool = True) -> None:
        self.revision = adm.revision
        metrics.BUNDLE_INFO.info({"revision": adm.revision})
        if fresh:
            self.last_success, self.last_error = time.time(), None
            metrics.BUNDLE_FRESH.set(self.last_success)

    async def run(self) -> None:
        """Long-poll forever; install each new bundle that verifies and compiles."""
        backoff = Backoff()
        while True:
            try:
                blob = await self.fetch(wait=self.WAIT)
                self.last_success = time.time()
                metrics.BUNDLE_FRESH.set(self.last_success)
                if blob is not None:
                    adm = await self._load(blob, self.url)
                    self._save(blob)
                    self.install(adm)
                    self._accepted(adm)
                    metrics.BUNDLE_SWAPS.inc()
                backoff.reset()
                continue
            except asyncio.CancelledError:
                raise
            except (bundle_mod.BundleError, config_mod.ConfigError, PolicyError) as e:
                # Keep enforcing the last good bundle; a bad one is never installed.
                self.last_error = f"bundle rejected: {e}"
                metrics.BUNDLE_ERRORS.labels("rejected").inc()
                log.error("new bundle rejected, keeping %s: %s", self.revision, e)
            except Exception as e:  # network, timeouts, control plane down, its certificate refused
                if tls_failure(e):
                    # Someone other than our control plane answered (or ours has a certificate our
                    # CA did not issue): nothing it sends is read; keep enforcing what we have.
                    self.last_error = f"control plane certificate refused: {e}"
                    metrics.BUNDLE_ERRORS.labels("tls").inc()
                    log.error(
                        "bundle poll refused the control plane's TLS (%s); keeping %s, retrying in %.0fs",
                        e,
                        self.revision,
                        backoff.delay,
                    )
                else:
                    self.last_error = f"control plane unreachable: {e!r}"
                    metrics.BUNDLE_ERRORS.labels("unreachable").inc()
                    log.warning(
                        "bundle poll failed (%s); keeping %s, retrying in %.0fs",
                        self.last_error,
                        self.revision,
                        backoff.delay,
                    )
            await backoff.wait()
