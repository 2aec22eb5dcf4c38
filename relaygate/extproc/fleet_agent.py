"""Registers the sidecar with the control plane, heartbeats its posture, and rotates its
receipt-signing key when the control plane asks.

Registration carries the receipt-signing public key with a proof of
possession, so the control plane can check every receipt it ingests; receipt
shipping starts only once the control plane knows the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.evidence import custody
from relaygate.evidence.signing import signer_for, write_private_key
from relaygate.contract import bundle as bundle_mod
from relaygate.extproc import metrics
from relaygate.extproc.bundle_sync import BundleSync
from relaygate.extproc.cpclient import Backoff, ControlPlane
from relaygate.extproc.receipt_shipper import ReceiptShipper
from relaygate.extproc.spool import Spool

log = logging.getLogger("relaygate.sync")


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

    def __init__(
        self,
        cp: ControlPlane,
        finalizer,
        key_path: Path,
        zone: str,
        grpc_address: str,
        spool: Spool,
        sync: BundleSync,
        version: str = "0.1.0",
        authz_address: str = "",
    ) -> None:
        self.cp, self.finalizer, self.key_path = cp, finalizer, Path(key_path)
        self.zone, self.grpc_address = zone, grpc_address
        # Where this sidecar answers Envoy's ext_authz check ("": it does not): the control plane
        # renders the gateway for that transport when it is given. A Unix path is made absolute
        # here, since Envoy resolves it against its own working directory, not ours.
        if authz_address.startswith("unix:"):
            authz_address = "unix:" + str(Path(authz_address[5:]).resolve())
        self.authz_address = authz_address
        self.spool, self.sync, self.version = spool, sync, version
        self.intro_path = self.key_path.with_name("key-introduction.json")
        self.registered = False
        self.shipper: ReceiptShipper | None = None
        self._ship_task: asyncio.Task | None = None
        self._last = (time.monotonic(), 0.0, 0.0, 0.0)

    async def _post(self, path: str, doc: dict) -> dict:
        return await self.cp.post_json(path, doc)

    @property
    def signer(self):
        return self.finalizer.signer

    async def register(self) -> dict:
        s = self.signer
        proof = custody.sign_event(
            custody.event(
                "key.registered",
                self.cp.instance_id,
                "receipts",
                s,
                s.created_at,
                event_id="cust_" + os.urandom(8).hex(),
            ),
            s,
        )
        return await self._post(
            "/v1/fleet/instances",
            {
                "instance_id": self.cp.instance_id,
                "tenant": self.cp.tenant,
                "zone": self.zone,
                "version": self.version,
                "grpc_address": self.grpc_address,
                **({"authz_address": self.authz_address} if self.authz_address else {}),
                "signing_key": {"key_id": s.key_id, "public_key": s.public_pem().decode(), "proof": proof},
            },
        )

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
        backoff = Backoff()
        while True:
            try:
                await self._post("/v1/fleet/keys", pending)
                self.intro_path.unlink(missing_ok=True)
                log.info("the control plane accepted signing key %s", custody.event_of(pending["event"])["key_id"])
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("introducing the new signing key failed (%s); retrying in about %.0fs", e, backoff.delay)
                await backoff.wait()

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
        doc = custody.event(
            "key.introduced",
            self.cp.instance_id,
            "receipts",
            new,
            now,
            event_id="cust_" + os.urandom(8).hex(),
            previous_key_id=old.key_id,
        )
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
        backoff = Backoff()
        while not self.registered:
            try:
                await self.register()
                self.registered = True
                log.info("registered with the control plane as %s (tenant %s)", self.cp.instance_id, self.cp.tenant)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("registering with the control plane failed (%s); retrying in about %.0fs", e, backoff.delay)
                await backoff.wait()
        if self.intro_path.exists():  # a rotation the previous process did not finish telling
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
