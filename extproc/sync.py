"""The sidecar's link to the control plane: policy bundles in, receipts out.

:class:`BundleSync` long-polls the control plane's bundle endpoint (ETag,
``If-None-Match``, ``Prefer: wait=N``), verifies each bundle against the
control plane's pinned public key, keeps the last good one on disk and swaps
it in whole between requests. When the control plane is unreachable the
sidecar starts from, and keeps enforcing, the copy on disk.

:class:`ReceiptShipper` ships finalized receipts from the spool in batches,
at least once, with exponential backoff; the control plane's ingestion is
idempotent, so a resend never duplicates.

Neither runs on a call's path: both are background tasks on the event loop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import aiohttp
import orjson

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence import custody
from evidence.receipts import envelope_receipt
from evidence.signing import signer_for, write_private_key
from extproc import bundle as bundle_mod
from extproc import config as config_mod
from extproc import metrics
from extproc.admission import Admission
from extproc.ledger import Ledger
from extproc.policy_engine import PolicyError
from extproc.snapshot import admission_from_bundle
from extproc.spool import Spool

log = logging.getLogger("relaygate.sync")


@dataclass
class ControlPlane:
    url: str                 # e.g. https://127.0.0.1:8090
    fleet_token: str
    instance_id: str
    tenant: str
    # https: the context every request to the control plane uses (the pinned CA, and the
    # fleet client certificate for mTLS); extproc.tls.client_context. None: the system store.
    ssl: object = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.fleet_token}", "X-Relaygate-Instance": self.instance_id}

    def session(self) -> aiohttp.ClientSession:
        """A client session bound to this control plane's TLS context (verification never off)."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl if self.ssl is not None else True))


def _tls_failure(e: BaseException) -> bool:
    """The control plane's certificate (or our client certificate) was refused in the handshake."""
    import ssl
    return isinstance(e, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError))


class BundleSync:
    """Keeps the processor on the newest good bundle for this sidecar's tenant."""

    WAIT = 20          # seconds the control plane may hold a poll open
    MAX_BACKOFF = 30.0

    def __init__(self, cp: ControlPlane, verify_key, store: Path, ledger: Ledger,
                 install: Callable[[Admission], None], limits=None) -> None:
        self.cp, self.verify_key, self.store, self.ledger, self.install = cp, verify_key, store, ledger, install
        self.limits = limits
        self.revision: str | None = None
        self.last_error: str | None = None
        self.last_success = 0.0
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"{self.cp.url.rstrip('/')}/v1/fleet/bundles/{self.cp.tenant}"

    def _session_(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self.cp.session()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _load(self, blob: bytes, source: str) -> Admission:
        b = await asyncio.to_thread(bundle_mod.read, blob, verify_key=self.verify_key,
                                    fleet_token=self.cp.fleet_token)
        adm = await asyncio.to_thread(admission_from_bundle, b, self.ledger, self.limits)
        # Build this thread's evaluator now, not on the first call after the swap.
        adm.engine._evaluator()
        log.info("policy bundle %s loaded from %s (%d modules, %d workspaces, %d keys)",
                 b.revision, source, len(b.modules), len(adm.config.workspaces), len(adm.config.keys))
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
        async with self._session_().get(self.url, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=timeout + wait)) as r:
            if r.status == 304:
                return None
            if r.status != 200:
                raise RuntimeError(f"bundle endpoint answered {r.status}: {(await r.text())[:300]}")
            return await r.read()

    async def initial(self, on_wait: Callable[[str], None] | None = None) -> Admission:
        """The first snapshot: from the control plane, else the copy on disk, else retry until one works."""
        delay = 1.0
        while True:
            try:
                blob = await self.fetch(timeout=5.0)
                adm = await self._load(blob, self.url)
                self._save(blob)
                self._accepted(adm)
                return adm
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, OSError) as e:
                self.last_error = (f"control plane certificate refused: {e}" if _tls_failure(e)
                                   else f"control plane unreachable: {e}")
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
            msg = f"no policy bundle yet ({self.last_error}); retrying in {delay:.0f}s"
            log.warning(msg)
            if on_wait:
                on_wait(msg)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.MAX_BACKOFF)

    def _accepted(self, adm: Admission, fresh: bool = True) -> None:
        self.revision = adm.revision
        metrics.BUNDLE_INFO.info({"revision": adm.revision})
        if fresh:
            self.last_success, self.last_error = time.time(), None

    async def run(self) -> None:
        """Long-poll forever; install each new bundle that verifies and compiles."""
        delay = 1.0
        while True:
            try:
                blob = await self.fetch(wait=self.WAIT)
                self.last_success = time.time()
                if blob is not None:
                    adm = await self._load(blob, self.url)
                    self._save(blob)
                    self.install(adm)
                    self._accepted(adm)
                    metrics.BUNDLE_SWAPS.inc()
                delay = 1.0
                continue
            except asyncio.CancelledError:
                raise
            except (bundle_mod.BundleError, config_mod.ConfigError, PolicyError) as e:
                # Keep enforcing the last good bundle; a bad one is never installed.
                self.last_error = f"bundle rejected: {e}"
                metrics.BUNDLE_ERRORS.labels("rejected").inc()
                log.error("new bundle rejected, keeping %s: %s", self.revision, e)
            except Exception as e:   # network, timeouts, control plane down, its certificate refused
                if _tls_failure(e):
                    # Someone other than our control plane answered (or ours has a certificate our
                    # CA did not issue): nothing it sends is read; keep enforcing what we have.
                    self.last_error = f"control plane certificate refused: {e}"
                    metrics.BUNDLE_ERRORS.labels("tls").inc()
                    log.error("bundle poll refused the control plane's TLS (%s); keeping %s, retrying in %.0fs",
                              e, self.revision, delay)
                else:
                    self.last_error = f"control plane unreachable: {e!r}"
                    metrics.BUNDLE_ERRORS.labels("unreachable").inc()
                    log.warning("bundle poll failed (%s); keeping %s, retrying in %.0fs",
                                self.last_error, self.revision, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.MAX_BACKOFF)


class Deferred(Exception):
    """The control plane asked to resend some receipts later (their key is not registered yet)."""


class ReceiptShipper:
    """Ships finalized receipts to the control plane, at least once, in chain order."""

    BATCH = 500
    MAX_BACKOFF = 30.0

    def __init__(self, cp: ControlPlane, spool: Spool, idle: float = 0.5) -> None:
        self.cp, self.spool, self.idle = cp, spool, idle
        self.shipped = 0
        self.last_error: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def ship_once(self) -> int:
        """Ship one batch; return how many receipts it held (0: nothing to do)."""
        rows = self.spool.unshipped(self.BATCH)
        if not rows:
            return 0
        body = (b'{"instance_id":' + orjson.dumps(self.cp.instance_id) + b',"receipts":['
                + b",".join(r[1].encode() for r in rows) + b"]}")
        if self._session is None or self._session.closed:
            self._session = self.cp.session()
        async with self._session.post(f"{self.cp.url.rstrip('/')}/v1/fleet/receipts", data=body,
                                      headers={**self.cp.headers(), "Content-Type": "application/json"},
                                      timeout=aiohttp.ClientTimeout(total=30)) as r:
            if r.status != 200:
                raise RuntimeError(f"receipt ingestion answered {r.status}: {(await r.text())[:300]}")
            result = await r.json()
        rejected = {x["id"]: x["reason"] for x in result.get("rejected", [])}
        deferred = {x["id"] for x in result.get("deferred", [])}
        seq_by_id = {envelope_receipt(orjson.loads(text))["id"]: seq for seq, text in rows}
        if rejected:
            for rid, reason in rejected.items():
                log.error("control plane refused receipt %s: %s", rid, reason)
            self.spool.mark_shipped([seq_by_id[r] for r in rejected if r in seq_by_id], state=2)
        self.spool.mark_shipped([seq for rid, seq in seq_by_id.items() if rid not in rejected and rid not in deferred])
        self.shipped += len(rows) - len(deferred)
        metrics.RECEIPTS_SHIPPED.inc(len(rows) - len(rejected) - len(deferred))
        if deferred:
            raise Deferred(f"{len(deferred)} receipts signed by a key the control plane does not know yet")
        return len(rows)

    async def run(self) -> None:
        delay = 1.0
        while True:
            try:
                n = await self.ship_once()
                self.last_error, delay = None, 1.0
                if n < self.BATCH:
                    await asyncio.sleep(self.idle)
                continue
            except asyncio.CancelledError:
                raise
            except Deferred as e:
                self.last_error = str(e)
                log.info("%s; retrying in %.0fs", e, delay)
            except Exception as e:
                self.last_error = repr(e)
                log.warning("shipping receipts failed (%s); %d waiting, retrying in %.0fs",
                            e, self.spool.backlog(), delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.MAX_BACKOFF)


def _counter_total(counter, **match) -> float:
    total = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in match.items()):
                total += sample.value
    return total


class FleetAgent:
    """Registers this sidecar with the control plane, then heartbeats its posture.

    Registration carries the receipt-signing public key, so the control plane
    can check every receipt it ingests; the receipt shipper starts only once the
    control plane knows the key.
    """

    INTERVAL = 2.0

    def __init__(self, cp: ControlPlane, finalizer, key_path: Path, zone: str, grpc_address: str, spool: Spool,
                 sync: BundleSync, version: str = "0.1.0") -> None:
        self.cp, self.finalizer, self.key_path = cp, finalizer, Path(key_path)
        self.zone, self.grpc_address = zone, grpc_address
        self.spool, self.sync, self.version = spool, sync, version
        self.intro_path = self.key_path.with_name("key-introduction.json")
        self.registered = False
        self.shipper: ReceiptShipper | None = None
        self._ship_task: asyncio.Task | None = None
        self._last = (time.monotonic(), 0.0, 0.0, 0.0)
        self._session: aiohttp.ClientSession | None = None

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self.cp.session()
        return self._session

    async def _post(self, path: str, doc: dict) -> dict:
        async with self._s().post(f"{self.cp.url.rstrip('/')}{path}", json=doc, headers=self.cp.headers(),
                                  timeout=aiohttp.ClientTimeout(total=10)) as r:
            if r.status not in (200, 201):
                raise RuntimeError(f"{path} answered {r.status}: {(await r.text())[:300]}")
            return await r.json()

    @property
    def signer(self):
        return self.finalizer.signer

    async def register(self) -> dict:
        s = self.signer
        proof = custody.sign_event(custody.event("key.registered", self.cp.instance_id, "receipts", s, s.created_at,
                                                 event_id="cust_" + os.urandom(8).hex()), s)
        return await self._post("/v1/fleet/instances", {
            "instance_id": self.cp.instance_id, "tenant": self.cp.tenant, "zone": self.zone,
            "version": self.version, "grpc_address": self.grpc_address,
            "signing_key": {"key_id": s.key_id, "public_key": s.public_pem().decode(), "proof": proof},
        })

    # -- key rotation ----------------------------------------------------------------------
    def _start_shipping(self) -> None:
        if self.shipper is not None and (self._ship_task is None or self._ship_task.done()):
            self._ship_task = asyncio.create_task(self.shipper.run())

    async def _stop_shipping(self) -> None:
        if self._ship_task is not None:
            self._ship_task.cancel()
            try:
                await self._ship_task
            except asyncio.CancelledError:
                pass
            self._ship_task = None

    async def _post_introduction(self) -> None:
        """Hand the control plane the saved introduction until it accepts it."""
        pending = json.loads(self.intro_path.read_text())
        delay = 1.0
        while True:
            try:
                await self._post("/v1/fleet/keys", pending)
                self.intro_path.unlink(missing_ok=True)
                log.info("the control plane accepted signing key %s", custody.event_of(pending["event"])["key_id"])
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("introducing the new signing key failed (%s); retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def rotate(self, rotation_id: str | None) -> None:
        """Replace the receipt-signing key; the old key signs the introduction of the new one.

        Crash-safe order, with no await in between, so no receipt is signed by a key
        outside its validity: save the signed introduction, replace the key file
        (the old private key is gone), then switch the finalizer. Shipping pauses
        until the control plane knows the new key.
        """
        await self._stop_shipping()
        old = self.signer
        key = Ed25519PrivateKey.generate()
        now = time.time()
        new = signer_for(key, now)
        doc = custody.event("key.introduced", self.cp.instance_id, "receipts", new, now,
                            event_id="cust_" + os.urandom(8).hex(), previous_key_id=old.key_id)
        env = custody.sign_event(doc, old, new)
        tmp = self.intro_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rotation_id": rotation_id, "event": env}))
        os.replace(tmp, self.intro_path)
        write_private_key(self.key_path, key)
        self.key_path.with_suffix(".pub").write_bytes(new.public_pem())
        self.finalizer.use_signer(new)
        log.info("receipt-signing key rotated: %s -> %s", old.key_id, new.key_id)
        await self._post_introduction()
        self._start_shipping()

    def posture(self) -> dict:
        now = time.monotonic()
        allowed = _counter_total(metrics.DECISIONS, decision="allow")
        denied = _counter_total(metrics.DECISIONS, decision="deny")
        # Every call that ended in a 5xx: policy errors, the policy service's own, upstream failures.
        errors = _counter_total(metrics.OUTCOMES, status_class="5xx")
        t0, a0, d0, e0 = self._last
        self._last = (now, allowed, denied, errors)
        dt = max(now - t0, 1e-3)
        return {
            "bundle_revision": self.sync.revision,
            "bundle_error": self.sync.last_error,
            "contract_versions": [bundle_mod.MIN_CONTRACT_VERSION, bundle_mod.CONTRACT_VERSION],
            "receipts_backlog": self.spool.backlog(),
            "signing_key_id": self.signer.key_id,
            "calls_total": allowed + denied,
            "decisions_per_s": {"allow": round((allowed - a0) / dt, 3), "deny": round((denied - d0) / dt, 3)},
            "errors_per_s": round((errors - e0) / dt, 3),
            "errors_total": errors,
        }

    async def heartbeat(self) -> dict:
        reply = await self._post(f"/v1/fleet/instances/{self.cp.instance_id}/heartbeat", self.posture())
        for command in reply.get("commands") or []:
            if command.get("type") == "rotate_signing_key":
                await self.rotate(command.get("rotation_id"))
        return reply

    async def run(self, shipper: ReceiptShipper) -> None:
        delay = 1.0
        while not self.registered:
            try:
                await self.register()
                self.registered = True
                log.info("registered with the control plane as %s (tenant %s)", self.cp.instance_id,
                         self.cp.tenant)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("registering with the control plane failed (%s); retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        if self.intro_path.exists():    # a rotation the previous process did not finish telling
            await self._post_introduction()
        self.shipper = shipper
        self._start_shipping()
        try:
            while True:
                try:
                    await self.heartbeat()
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning("heartbeat failed: %s", e)
                await asyncio.sleep(self.INTERVAL)
        finally:
            await self._stop_shipping()
            await shipper.close()
            if self._session is not None:
                await self._session.close()
