"""The append-only audit log: every ingested receipt is a leaf of an RFC 9162 Merkle tree.

Leaves are appended inside the ingestion transaction (``stage`` then
``commit``/``abort``, so the in-memory tree never gets ahead of the database),
in one order for every reader. Tree heads are signed as C2SP checkpoints by the
control plane's tree-head key every ``interval`` seconds when the tree grew,
and on demand. Inclusion proofs exist for any receipt against any checkpoint
that contains it; consistency proofs between any two sizes.

One writer per database: several control-plane replicas would need to elect
the one that appends.
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from relaygate.controlplane import metrics
from relaygate.controlplane import schema
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError
from relaygate.evidence.checkpoint import sign_checkpoint
from relaygate.evidence.merkle import MerkleLog, leaf_hash
from relaygate.evidence.receipts import leaf_bytes

log = logging.getLogger("relaygate.controlplane.log")
ORIGIN = "relaygate.audit/v1"


class TransparencyLog:
    def __init__(self, engine, keys, origin: str = ORIGIN) -> None:
        self.engine, self.keys, self.origin = engine, keys, origin
        self.tree = MerkleLog()
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self.engine.connect() as c:
            rows = (
                await c.execute(
                    sa.select(schema.merkle_leaves.c.idx, schema.merkle_leaves.c.leaf_hash).order_by(
                        schema.merkle_leaves.c.idx
                    )
                )
            ).all()
        for i, (idx, h) in enumerate(rows):
            if idx != i:
                raise RuntimeError(f"merkle_leaves has a gap at index {i}")
        self.tree = MerkleLog([bytes(h) for _, h in rows])
        log.info("audit log: %d leaves", len(self.tree))
        metrics.TREE_SIZE.set(len(self.tree))
        head = await self.latest()
        metrics.CHECKPOINT_TS.set(head["created_ms"] / 1000 if head else 0)
        metrics.CHECKPOINT_SIZE.set(head["size"] if head else 0)

    # -- appending (called by the ingestor under its lock) --------------------------------
    async def stage(self, conn, items: list[tuple[int, dict]]) -> None:
        """Append the leaves of ``(event_seq, envelope)`` pairs in order, one statement for all."""
        base = len(self.tree) + len(self._pending)
        hashes = [leaf_hash(leaf_bytes(env)) for _, env in items]
        await conn.execute(
            schema.merkle_leaves.insert(),
            [{"idx": base + i, "event_seq": seq, "leaf_hash": h} for i, ((seq, _), h) in enumerate(zip(items, hashes))],
        )
        self._pending.extend(hashes)

    def commit(self) -> None:
        for h in self._pending:
            self.tree.append(h)
        self._pending.clear()
        metrics.TREE_SIZE.set(len(self.tree))

    def abort(self) -> None:
        self._pending.clear()

    # -- tree heads --------------------------------------------------------------------------
    async def latest(self, conn=None) -> dict | None:
        async def q(c):
            return (
                (
                    await c.execute(
                        sa.select(schema.checkpoints)
                        .order_by(schema.checkpoints.c.size.desc(), schema.checkpoints.c.id.desc())
                        .limit(1)
                    )
                )
                .mappings()
                .first()
            )

        if conn is not None:
            return await q(conn)
        async with self.engine.connect() as c:
            return await q(c)

    async def checkpoint(self, force: bool = False) -> dict:
        """Sign the current tree head (unless the latest checkpoint already has this size)."""
        async with self._lock:
            size = len(self.tree)
            latest = await self.latest()
            if latest is not None and latest["size"] == size and not force:
                return dict(latest)
            root = self.tree.root(size)
            signer = self.keys.tree
            ts = now_ms()
            note = sign_checkpoint(self.origin, size, root, ts, signer)
            async with self.engine.begin() as c:
                cid = (
                    await c.execute(
                        schema.checkpoints.insert()
                        .values(size=size, root=root, note=note, key_id=signer.key_id, created_ms=ts)
                        .returning(schema.checkpoints.c.id)
                    )
                ).scalar()
            metrics.CHECKPOINT_TS.set(ts / 1000)
            metrics.CHECKPOINT_SIZE.set(size)
            return {"id": cid, "size": size, "root": root, "note": note, "key_id": signer.key_id, "created_ms": ts}

    async def run(self, interval: float) -> None:
        """Sign a checkpoint every ``interval`` seconds when the tree grew."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.checkpoint()
            except Exception:
                log.exception("signing a checkpoint failed")

    # -- proofs ------------------------------------------------------------------------------
    async def leaf_index(self, conn, event_seq: int) -> int | None:
        return (
            await conn.execute(
                sa.select(schema.merkle_leaves.c.idx).where(schema.merkle_leaves.c.event_seq == event_seq)
            )
        ).scalar()

    async def inclusion_for(self, conn, event_seq: int, tree_size: int | None = None) -> dict | None:
        """The inclusion proof of an event's leaf against ``tree_size`` (default: the latest
        checkpoint, signed now if none covers the leaf yet); None while the event is not a leaf."""
        idx = await self.leaf_index(conn, event_seq)
        if idx is None:
            return None
        if tree_size is None:
            head = await self.latest(conn)
            if head is None or head["size"] <= idx:
                head = await self.checkpoint()
            tree_size, note = head["size"], head["note"]
        else:
            note = (
                await conn.execute(
                    sa.select(schema.checkpoints.c.note).where(schema.checkpoints.c.size == tree_size).limit(1)
                )
            ).scalar()
        if not idx < tree_size <= len(self.tree):
            raise ApiError(
                400,
                "invalid_request",
                f"leaf {idx} is not in a tree of size {tree_size}",
                {"parameter": "tree_size", "provided": tree_size, "expected": f"> {idx}"},
            )
        return {"leaf_index": idx, "tree_size": tree_size, "hashes": self.inclusion(idx, tree_size), "checkpoint": note}

    def inclusion(self, index: int, size: int) -> list[str]:
        return [h.hex() for h in self.tree.inclusion_proof(index, size)]

    def consistency(self, first: int, second: int) -> list[str]:
        return [h.hex() for h in self.tree.consistency_proof(first, second)]


def checkpoint_json(row) -> dict:
    from relaygate.controlplane.util import iso

    return {
        "size": row["size"],
        "root_hash": bytes(row["root"]).hex(),
        "key_id": row["key_id"],
        "signed_at": iso(row["created_ms"]),
        "checkpoint": row["note"],
    }
