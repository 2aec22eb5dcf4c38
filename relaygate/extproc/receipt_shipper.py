"""Ships finalized receipts from the spool to the control plane, at least once, in chain order.

Batches of up to 500, jittered exponential backoff (relaygate/extproc/cpclient.py); the
control plane's ingestion is idempotent, so a resend never duplicates. Receipts
signed by a key the control plane does not know yet are *deferred* (kept and
resent), ones it refuses are marked and logged. A background task on the
event loop, never on a call's path.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson

from relaygate.evidence.receipts import envelope_receipt
from relaygate.extproc import metrics
from relaygate.extproc.cpclient import Backoff, ControlPlane
from relaygate.extproc.spool import Spool

log = logging.getLogger("relaygate.sync")


class Deferred(Exception):
    """The control plane asked to resend some receipts later (their key is not registered yet)."""


class ReceiptShipper:
    """Ships finalized receipts to the control plane, at least once, in chain order."""

    BATCH = 500

    def __init__(self, cp: ControlPlane, spool: Spool, idle: float = 0.5) -> None:
        self.cp, self.spool, self.idle = cp, spool, idle
        self.shipped = 0
        self.last_error: str | None = None

    async def ship_once(self) -> int:
        """Ship one batch; return how many receipts it held (0: nothing to do)."""
        rows = self.spool.unshipped(self.BATCH)
        if not rows:
            return 0
        body = (
            b'{"instance_id":'
            + orjson.dumps(self.cp.instance_id)
            + b',"receipts":['
            + b",".join(r[1].encode() for r in rows)
            + b"]}"
        )
        async with self.cp.http().post(
            self.cp.endpoint("/v1/fleet/receipts"),
            data=body,
            headers={**self.cp.headers(), "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as r:
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
        backoff = Backoff()
        while True:
            try:
                n = await self.ship_once()
                self.last_error = None
                backoff.reset()
                if n < self.BATCH:
                    await asyncio.sleep(self.idle)
                continue
            except asyncio.CancelledError:
                raise
            except Deferred as e:
                self.last_error = str(e)
                log.info("%s; retrying in about %.0fs", e, backoff.delay)
            except Exception as e:
                self.last_error = repr(e)
                log.warning(
                    "shipping receipts failed (%s); %d waiting, retrying in about %.0fs",
                    e,
                    self.spool.backlog(),
                    backoff.delay,
                )
            await backoff.wait()
