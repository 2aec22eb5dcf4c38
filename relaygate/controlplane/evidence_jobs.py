"""Evidence bundles: assembled as background jobs with visible progress, then served and verified.

A job selects the workspace's gateway receipts in a time range, signs a fresh
checkpoint so every receipt is inside a signed tree head, and writes the
layout of relaygate/evidence/evidence_bundle.py: receipts with inclusion proofs, the
checkpoints since the earliest receipt with consistency proofs between them,
each sidecar's chain over the covered span, all key-custody events, every
policy version the receipts cite (and the workspace's current ones),
deployments and fleet posture. The manifest is signed with the current
tree-head key. Jobs survive a restart: unfinished ones start over. /metrics
counts the jobs that ended by result, the time each took, and those active
(on this replica).

With several replicas a job runs on the one holding its lease (relaygate/controlplane/leases.py,
kind ``evidence``): the replica that queued it claims it, every progress write is fenced on
the lease, and a job whose replica died is started over by another within ``lease_ttl``
(each replica scans every ``lease_ttl / 3`` seconds). The finished tar.gz is stored in the
database (``evidence_blobs``), in the same fenced transaction that marks the job done, so
every replica serves and verifies it; nothing is written to the replica's disk.
"""

from __future__ import annotations

import asyncio
import logging
import time

import sqlalchemy as sa

from relaygate.controlplane import metrics, schema
from relaygate.controlplane.audit import record
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.leases import Lease, LeaseLost, Leases
from relaygate.controlplane.util import iso, new_id
from relaygate.evidence import evidence_bundle as eb
from relaygate.evidence.receipts import canonical

log = logging.getLogger("relaygate.controlplane.evidence")
E = schema.audit_events
KIND = "evidence"


MAX_ACTIVE_PER_WORKSPACE = 2


class EvidenceJobs:
    def __init__(self, engine, transparency, keys, leases: Leases) -> None:
        self.engine, self.log, self.keys, self.leases = engine, transparency, keys, leases
        self._tasks: dict[str, asyncio.Task] = {}
        self._lease: dict[str, Lease] = {}
        self._admit = asyncio.Lock()

    async def create(self, workspace: str | None, params: dict, actor: str) -> dict:
        """Queue a job; 429 if the workspace already has MAX_ACTIVE_PER_WORKSPACE pending or running.

        Each job reads the workspace's receipts, signs, and writes a file kept on disk: without a
        bound one key holder could queue them as fast as the API rate limit allows and take the
        control plane's CPU and disk from every other workspace.
        """
        from relaygate.controlplane.errors import ApiError

        row = {
            "id": new_id("evb_", 16),
            "workspace_id": workspace,
            "status": "pending",
            "progress": 0.0,
            "stage": "queued",
            "params": params,
            "created_by": actor,
            "created_ms": now_ms(),
        }
        B = schema.evidence_bundles
        owner = B.c.workspace_id.is_(None) if workspace is None else B.c.workspace_id == workspace
        async with self._admit, self.engine.begin() as c:
            active = (
                await c.execute(
                    sa.select(sa.func.count()).select_from(B).where(owner, B.c.status.in_(["pending", "running"]))
                )
            ).scalar()
            if active >= MAX_ACTIVE_PER_WORKSPACE:
                raise ApiError(
                    429,
                    "evidence.busy",
                    f"{active} evidence bundles of this workspace are still being assembled; retry when one finishes",
                    {"retry_after": 2},
                    headers={"Retry-After": "2"},
                )
            await c.execute(B.insert().values(**row))
            lease = await self.leases.hold_new(c, KIND, row["id"])
        self._start(row["id"], lease)
        return row

    async def _take(self, job_id: str) -> None:
        """Claim an unfinished job nobody holds (its replica died or stopped) and run it here."""
        if job_id in self._tasks:
            return
        B = schema.evidence_bundles
        still_open = sa.exists().where(B.c.id == job_id, B.c.status.in_(["pending", "running"]))
        lease = await self.leases.claim(KIND, job_id, still_open)
        if lease is not None:
            log.info("resuming evidence bundle %s (replica %s, lease epoch %d)", job_id, self.leases.owner, lease.epoch)
            self._start(job_id, lease)

    def _start(self, job_id: str, lease: Lease) -> None:
        task = asyncio.create_task(self._own(job_id, lease))
        self._tasks[job_id], self._lease[job_id] = task, lease
        metrics.EVIDENCE_JOBS_ACTIVE.set(len(self._tasks))
        lease.keep(task.cancel)
        task.add_done_callback(lambda _t: self._done(job_id))

    async def _own(self, job_id: str, lease: Lease) -> None:
        try:
            await self._run(job_id, lease)
        except LeaseLost as e:
            log.warning("evidence bundle %s: %s; another replica assembles it now", job_id, e)
        finally:
            await lease.release()

    def _done(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._lease.pop(job_id, None)
        metrics.EVIDENCE_JOBS_ACTIVE.set(len(self._tasks))

    async def stop(self) -> None:
        """A clean stop: end the jobs here and release their leases (another replica starts them over)."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def resume(self) -> None:
        """Start over the unfinished jobs nobody holds (at start, then periodically)."""
        async with self.engine.connect() as c:
            ids = [
                r[0]
                for r in (
                    await c.execute(
                        sa.select(schema.evidence_bundles.c.id).where(
                            schema.evidence_bundles.c.status.in_(["pending", "running"])
                        )
                    )
                ).all()
            ]
        for job_id in await self.leases.claimable(KIND, [j for j in ids if j not in self._tasks]):
            await self._take(job_id)

    async def _progress(self, job_id: str, progress: float, stage: str, blob: bytes | None = None, **extra) -> None:
        """Fenced on the job's lease: a replica that lost it writes nothing more."""
        lease = self._lease.get(job_id)
        async with lease.fenced() if lease is not None else self.engine.begin() as c:
            await c.execute(
                schema.evidence_bundles.update()
                .where(schema.evidence_bundles.c.id == job_id)
                .values(progress=round(progress, 3), stage=stage, **extra)
            )
            if blob is not None:
                await c.execute(schema.evidence_blobs.delete().where(schema.evidence_blobs.c.id == job_id))
                await c.execute(schema.evidence_blobs.insert().values(id=job_id, data=blob))
            if extra.get("status") in ("done", "failed"):  # in the audit feed (webhooks carry it), once
                ws = (
                    await c.execute(
                        sa.select(schema.evidence_bundles.c.workspace_id).where(schema.evidence_bundles.c.id == job_id)
                    )
                ).scalar()
                detail = {k: extra.get(k) for k in ("sha256", "size_bytes", "error") if extra.get(k) is not None}
                kind = "evidence.completed" if extra["status"] == "done" else "evidence.failed"
                await record(c, kind, ws, "system:evidence", {"bundle": job_id, **detail})

    async def _run(self, job_id: str, lease: Lease) -> None:
        started = time.monotonic()
        try:
            async with self.engine.connect() as c:
                job = (
                    (await c.execute(sa.select(schema.evidence_bundles).where(schema.evidence_bundles.c.id == job_id)))
                    .mappings()
                    .first()
                )
            await self._progress(job_id, 0.01, "signing a tree head", status="running")
            blob, stats = await self.assemble(job)
            await self._progress(
                job_id,
                1.0,
                "done",
                blob=blob,
                status="done",
                finished_ms=now_ms(),
                path=None,
                sha256=eb.sha256_hex(blob),
                size_bytes=len(blob),
                stats=stats,
            )
            log.info("evidence bundle %s: %d receipts, %d bytes", job_id, stats["receipts"], len(blob))
            self._ended("done", started)
        except (asyncio.CancelledError, LeaseLost):
            raise
        except Exception as e:
            log.exception("evidence bundle %s failed", job_id)
            self._ended("failed", started)
            await self._progress(job_id, 1.0, "failed", status="failed", finished_ms=now_ms(), error=str(e)[:2000])

    @staticmethod
    def _ended(result: str, started: float) -> None:
        metrics.EVIDENCE_JOBS.labels(result).inc()
        metrics.EVIDENCE_JOB_SECONDS.labels(result).observe(time.monotonic() - started)

    async def assemble(self, job) -> tuple[bytes, dict]:
        jid, ws, params = job["id"], job["workspace_id"], job["params"]
        start, end = params.get("from_ms"), params.get("to_ms")
        components = params.get("components") or list(eb.COMPONENTS)
        head = await self.log.checkpoint()
        size = head["size"]
        files: dict[str, bytes] = {}
        stats = {"receipts": 0}
        async with self.engine.connect() as c:
            where = [E.c.kind == "gateway.call"]
            if ws is not None:
                where.append(E.c.workspace_id == ws)
            if start is not None:
                where.append(E.c.occurred_ms >= start)
            if end is not None:
                where.append(E.c.occurred_ms < end)
            rows = []
            if "receipts" in components:
                rows = (
                    (
                        await c.execute(
                            sa.select(
                                E.c.seq, E.c.id, E.c.receipt, E.c.chain_owner, E.c.chain_seq, schema.merkle_leaves.c.idx
                            )
                            .join(schema.merkle_leaves, schema.merkle_leaves.c.event_seq == E.c.seq)
                            .where(*where, schema.merkle_leaves.c.idx < size)
                            .order_by(schema.merkle_leaves.c.idx)
                        )
                    )
                    .mappings()
                    .all()
                )
            await self._progress(jid, 0.1, f"{len(rows)} receipts selected")
            receipts, proofs = [], []
            for i, r in enumerate(rows):
                receipts.append({"event_id": r["id"], "leaf_index": r["idx"], "envelope": r["receipt"]})
                proofs.append(
                    {
                        "event_id": r["id"],
                        "leaf_index": r["idx"],
                        "tree_size": size,
                        "hashes": await self.log.inclusion(r["idx"], size),
                    }
                )
                if i % 200 == 199:
                    await self._progress(jid, 0.1 + 0.5 * i / len(rows), f"inclusion proofs {i + 1}/{len(rows)}")
            stats["receipts"] = len(receipts)
            if "receipts" in components:
                files[eb.RECEIPTS] = eb.jsonl(receipts)
                files[eb.INCLUSION] = eb.jsonl(proofs)
                # Tree heads from the one before the earliest receipt to the one just signed.
                first_leaf = rows[0]["idx"] if rows else size
                cps = (
                    (
                        await c.execute(
                            sa.select(schema.checkpoints)
                            .where(schema.checkpoints.c.size >= first_leaf)
                            .order_by(schema.checkpoints.c.size, schema.checkpoints.c.id)
                        )
                    )
                    .mappings()
                    .all()
                )
                before = (
                    (
                        await c.execute(
                            sa.select(schema.checkpoints)
                            .where(schema.checkpoints.c.size < first_leaf)
                            .order_by(schema.checkpoints.c.size.desc())
                            .limit(1)
                        )
                    )
                    .mappings()
                    .first()
                )
                chosen = ([before] if before else []) + [x for x in cps if x["size"] <= size]
                dedup, sizes = [], set()
                for cp in chosen:
                    if cp["size"] not in sizes:
                        sizes.add(cp["size"])
                        dedup.append(cp)
                files[eb.CHECKPOINTS] = canonical([cp["note"] for cp in dedup])
                # Plus a proof from each checkpoint the requester already holds ("consistency_from")
                # to this tree head, so an auditor can check the bundle extends it (verify
                # --after-checkpoint) even when that checkpoint is older than the bundle's first.
                pairs = [(a["size"], b["size"]) for a, b in zip(dedup, dedup[1:])]
                pairs += [
                    (m, size) for m in sorted(set(params.get("consistency_from") or [])) if m <= size and m not in sizes
                ]
                files[eb.CONSISTENCY] = canonical(
                    [{"first": a, "second": b, "hashes": await self.log.consistency(a, b)} for a, b in pairs]
                )
                stats["checkpoints"] = len(dedup)
                await self._progress(jid, 0.7, "hash chains")
                files[eb.CHAINS] = eb.jsonl(await self._chains(c, rows))
            # Always: receipts cannot be checked without the keys, and the manifest's signer (the
            # current tree-head key) chains to the root the auditor pins only through custody.
            envs = (
                await c.execute(sa.select(schema.custody_events.c.envelope).order_by(schema.custody_events.c.seq))
            ).all()
            files[eb.CUSTODY] = eb.jsonl([e[0] for e in envs])
            if "policies" in components or "receipts" in components:
                await self._progress(jid, 0.8, "policy versions")
                files.update(await self._policies(c, ws, [r["seq"] for r in rows]))
            if "fleet_posture" in components:
                instances = (await c.execute(sa.select(schema.instances).order_by(schema.instances.c.id))).mappings()
                files[eb.POSTURE] = canonical(
                    [
                        {
                            "id": i["id"],
                            "tenant": i["tenant"],
                            "zone": i["zone"],
                            "version": i["version"],
                            "registered_at": iso(i["registered_ms"]),
                            "last_seen_at": iso(i["last_seen_ms"]),
                            "posture": i["posture"],
                        }
                        for i in instances
                    ]
                )
            if "deployments" in components:
                from relaygate.controlplane.deployments import deployment_json

                dq = sa.select(schema.deployments).order_by(schema.deployments.c.created_ms)
                if ws is not None:
                    dq = dq.where(schema.deployments.c.workspace_id == ws)
                if start is not None:
                    dq = dq.where(
                        sa.or_(schema.deployments.c.finished_ms.is_(None), schema.deployments.c.finished_ms >= start)
                    )
                if end is not None:
                    dq = dq.where(schema.deployments.c.created_ms < end)
                files[eb.DEPLOYMENTS] = canonical([deployment_json(d) for d in (await c.execute(dq)).mappings().all()])
        manifest = {
            "bundle_id": jid,
            "created_at": iso(now_ms()),
            "workspace": ws,
            "range": {"from": iso(start), "to": iso(end)},
            "components": components,
            "log": {"origin": self.log.origin, "tree_size": size, "root_hash": bytes(head["root"]).hex()},
        }
        await self._progress(jid, 0.95, "signing the manifest")
        blob = await asyncio.to_thread(eb.write, files, manifest, self.keys.tree)
        return blob, stats

    async def _chains(self, c, rows) -> list[dict]:
        """Every receipt of each sidecar over the span the selected receipts cover (others: hashes only)."""
        spans: dict[str, list[int]] = {}
        included = set()
        for r in rows:
            if r["chain_owner"] is None or r["chain_seq"] is None:
                continue
            spans.setdefault(r["chain_owner"], []).append(r["chain_seq"])
            included.add((r["chain_owner"], r["chain_seq"]))
        out = []
        for owner, seqs in spans.items():
            links = (
                await c.execute(
                    sa.select(E.c.chain_seq, E.c.receipt_hash, E.c.prev_hash)
                    .where(E.c.chain_owner == owner, E.c.chain_seq >= min(seqs), E.c.chain_seq <= max(seqs))
                    .order_by(E.c.chain_seq)
                )
            ).all()
            for seq, h, prev in links:
                out.append(
                    {"owner": owner, "seq": seq, "hash": h, "prev_hash": prev, "included": (owner, seq) in included}
                )
        return out

    async def _policies(self, c, ws: str | None, seqs: list[int]) -> dict[str, bytes]:
        P, V, AP = schema.policies, schema.policy_versions, schema.audit_event_policies
        wanted: set[tuple[str, str]] = set()
        for i in range(0, len(seqs), 500):
            chunk = seqs[i : i + 500]
            wanted |= set(
                (await c.execute(sa.select(AP.c.policy_id, AP.c.version).where(AP.c.event_seq.in_(chunk)))).all()
            )
        current = sa.select(P.c.id, V.c.label).join(
            V, sa.and_(V.c.policy_id == P.c.id, V.c.version == P.c.current_version)
        )
        if ws is not None:
            current = current.where(sa.or_(P.c.workspace_id == ws, P.c.workspace_id.is_(None)))
        wanted |= set((await c.execute(current.where(P.c.deleted_ms.is_(None)))).all())
        files, index = {}, {}
        for pid, label in sorted(wanted):
            row = (
                await c.execute(
                    sa.select(V.c.source, P.c.workspace_id, P.c.name)
                    .join(P, P.c.id == V.c.policy_id)
                    .where(V.c.policy_id == pid, V.c.label == label)
                    .order_by(V.c.version.desc())
                    .limit(1)
                )
            ).first()
            if row is None:
                continue  # cited but unknown here: the verifier will say so
            source, owner_ws, name = row
            if ws is not None and owner_ws not in (None, ws):
                continue
            ext = "rego" if owner_ws is None else "yaml"
            path = f"policies/{pid}@{label}.{ext}"
            files[path] = source.encode()
            index[f"{pid}@{label}"] = {
                "path": path,
                "sha256": eb.sha256_hex(files[path]),
                "workspace": owner_ws,
                "name": name,
            }
        files[eb.POLICIES] = canonical(index)
        return files


def job_json(row) -> dict:
    row = {"finished_ms": None, "error": None, "sha256": None, "size_bytes": None, "stats": None, **row}
    out = {
        "id": row["id"],
        "status": row["status"],
        "progress": row["progress"],
        "stage": row["stage"],
        "workspace": row["workspace_id"],
        "created_at": iso(row["created_ms"]),
        "created_by": row["created_by"],
        "finished_at": iso(row["finished_ms"]),
        "error": row["error"],
        "sha256": row["sha256"],
        "size_bytes": row["size_bytes"],
        "stats": row["stats"],
        "params": {
            k: v for k, v in (row["params"] or {}).items() if k in ("from", "to", "components", "consistency_from")
        },
    }
    return out
